#!/usr/bin/env python3
"""Soak test: mixed load through a real Envoy and the `epp` binary over `epp-sim`
servers that come and go, with streams cancelled at random.

Run it through benches/run-soak.sh (which builds the binaries and installs Envoy). At the
end it asserts that:
  - the EPP's resident memory is flat after the warm-up,
  - open ext_proc streams, in-flight requests per endpoint and running requests are 0,
  - no request was routed outside the pool (Envoy's access log against the membership log),
  - the EPP never panicked or exited, and every request kind got the statuses it should.
Figures go to OUT/summary.json, OUT/samples.csv and stdout. Only the standard library.
"""

import argparse
import datetime
import http.client
import json
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request

MODEL = "meta-llama/Llama-3.1-8B-Instruct"
# After a server leaves the endpoints file the EPP needs one file poll (1 s) to drop it;
# a request that started within this many seconds of the removal may still go there.
REMOVAL_GRACE_S = 3.0


def log(message):
    print(f"[soak {time.strftime('%H:%M:%S')}] {message}", flush=True)


class Cluster:
    """epp-sim servers, one process each, and the endpoints file the EPP watches."""

    def __init__(self, args, out):
        self.args = args
        self.out = out
        self.file = os.path.join(out, "endpoints.json")
        self.next_port = args.base_port + 100
        self.servers = {}  # address -> Popen
        self.members = []  # addresses in the file
        self.events = []  # (time, "add"|"remove", address)
        self.lock = threading.Lock()
        self.retired = []  # (Popen, kill_at)

    def start_server(self):
        port = self.next_port
        self.next_port += 1
        address = f"127.0.0.1:{port}"
        logfile = open(os.path.join(self.out, f"sim-{port}.log"), "w")
        process = subprocess.Popen(
            [os.path.join(self.args.bin, "epp-sim"), "--servers", "1", "--base-port", str(port),
             "--time-scale", str(self.args.time_scale), "--seed", str(port)],
            stdout=logfile, stderr=subprocess.STDOUT)
        wait_http(f"http://{address}/metrics", 20)
        self.servers[address] = process
        return address

    def write_file(self):
        tmp = self.file + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.members, f)
        os.replace(tmp, self.file)

    def add(self, address):
        with self.lock:
            self.members.append(address)
            self.write_file()
            self.events.append((time.time(), "add", address))

    def remove(self, address):
        with self.lock:
            self.members.remove(address)
            self.write_file()
            self.events.append((time.time(), "remove", address))

    def churn_once(self, rng):
        """One server leaves (killed a few seconds later, cutting what it still runs);
        a new one joins."""
        if len(self.members) > 1:
            leaving = rng.choice(self.members)
            self.remove(leaving)
            self.retired.append((self.servers.pop(leaving), time.time() + rng.uniform(1, 6)))
        self.add(self.start_server())

    def reap(self, force=False):
        keep = []
        for process, kill_at in self.retired:
            if force or time.time() >= kill_at:
                process.kill()
                process.wait()
            else:
                keep.append((process, kill_at))
        self.retired = keep

    def stop(self):
        self.reap(force=True)
        for process in self.servers.values():
            process.kill()
            process.wait()


def wait_http(url, seconds, data=None):
    deadline = time.time() + seconds
    last = None
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, data=data, timeout=2) as response:
                if response.status == 200:
                    return
        except Exception as error:  # not up yet
            last = error
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {seconds}s: {last}")


# === load ===

SYSTEM_PROMPTS = [f"You are assistant number {i}. " + ("Follow the house rules. " * 40) for i in range(8)]


def prompt(rng, size=None):
    base = rng.choice(SYSTEM_PROMPTS)
    tail = " ".join(rng.choice(["alpha", "beta", "gamma", "delta", "omega"]) for _ in range(rng.randint(5, 200)))
    text = base + tail
    if size:
        text = (text * (size // len(text) + 1))[:size]
    return text


def request_for(kind, rng):
    """(method, path, body bytes or None, streaming?)."""
    if kind == "completion":
        body = {"model": MODEL, "prompt": prompt(rng), "max_tokens": rng.randint(1, 32)}
        return "POST", "/v1/completions", json.dumps(body).encode(), False
    if kind in ("chat_stream", "cancel_mid_response"):
        max_tokens = 400 if kind == "cancel_mid_response" else rng.randint(1, 64)
        body = {"model": MODEL, "stream": True, "max_tokens": max_tokens,
                "messages": [{"role": "system", "content": prompt(rng)},
                             {"role": "user", "content": "question %d" % rng.randint(0, 10**6)}]}
        return "POST", "/v1/chat/completions", json.dumps(body).encode(), True
    if kind == "cancel_mid_request":
        body = {"model": MODEL, "prompt": prompt(rng, 60_000), "max_tokens": 4}
        return "POST", "/v1/completions", json.dumps(body).encode(), False
    if kind == "large":
        body = {"model": MODEL, "prompt": prompt(rng, 100_000), "max_tokens": 4}
        return "POST", "/v1/completions", json.dumps(body).encode(), False
    if kind == "invalid_json":
        return "POST", "/v1/completions", b'{"model": "' + MODEL.encode() + b'", "prompt": ', False
    if kind == "bodyless":
        return "GET", "/v1/models", None, False
    raise ValueError(kind)


KINDS = [("completion", 35), ("chat_stream", 25), ("cancel_mid_response", 12),
         ("cancel_mid_request", 8), ("large", 5), ("invalid_json", 5), ("bodyless", 10)]
EXPECTED = {"invalid_json": {400}, "cancel_mid_response": {200}, "cancel_mid_request": set()}


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.counts = {}  # (kind, outcome) -> n
        self.examples = {}  # "kind status" -> first body of an unexpected status

    def example(self, kind, status, text):
        with self.lock:
            self.examples.setdefault(f"{kind} {status}", text.decode("utf-8", "replace"))

    def add(self, kind, outcome):
        with self.lock:
            self.counts[(kind, outcome)] = self.counts.get((kind, outcome), 0) + 1


def one_request(port, kind, rng, stats):
    method, path, body, streaming = request_for(kind, rng)
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    try:
        head = f"{method} {path} HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n"
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        sock.sendall(head.encode() + b"\r\n")
        if kind == "cancel_mid_request":
            sock.sendall(body[: rng.randint(1, len(body) - 1)])
            time.sleep(rng.uniform(0, 0.05))
            stats.add(kind, "cancelled")
            return  # close with the body half sent
        if body is not None:
            sock.sendall(body)
        response = http.client.HTTPResponse(sock)
        response.begin()
        if kind == "cancel_mid_response" and response.status == 200:
            response.read1(64) if hasattr(response, "read1") else response.read(64)
            time.sleep(rng.uniform(0, 0.2))
            stats.add(kind, "200")
            return  # close with the response still streaming
        text = response.read()
        stats.add(kind, str(response.status))
        if response.status not in EXPECTED.get(kind, {200}):
            stats.example(kind, response.status, text[:300])
    except (OSError, http.client.HTTPException) as error:
        stats.add(kind, "error:" + type(error).__name__)
    finally:
        # Reset, not FIN, so the cancellation reaches Envoy at once.
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        except OSError:
            pass
        sock.close()


def worker(port, seed, stop, stats):
    rng = random.Random(seed)
    names = [k for k, _ in KINDS]
    weights = [w for _, w in KINDS]
    while not stop.is_set():
        one_request(port, rng.choices(names, weights)[0], rng, stats)


# === observation ===

def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)")


def scrape(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        page = response.read().decode()
    values = {}
    for line in page.splitlines():
        match = SAMPLE.match(line)
        if match:
            values.setdefault(match.group(1), []).append((match.group(2) or "", float(match.group(3))))
    return values


def total(values, name):
    return sum(v for _, v in values.get(name, []))


def parse_access_log(path):
    """[(start epoch, status, destination)] from Envoy's access log (tests/envoy config)."""
    rows = []
    with open(path, errors="replace") as f:
        for line in f:
            parts = line.split()
            if len(parts) < 5 or "upstream=" not in line:
                continue
            try:
                start = datetime.datetime.strptime(parts[0], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
                    tzinfo=datetime.timezone.utc).timestamp()
            except ValueError:
                continue
            # What the EPP picked (envoy.lb metadata); Envoy leaves UPSTREAM_HOST empty when
            # the server answered before the request body was sent, so it is the fallback.
            upstream = re.search(r"epp=(\S+)", line).group(1)
            if upstream == "-":
                upstream = re.search(r"upstream=(\S+)", line).group(1)
            status = parts[3]
            rows.append((start, status, upstream))
    return rows


def outside_pool(rows, events):
    """Requests sent to an address that was not in the pool when they started."""
    bad = []
    for start, status, upstream in rows:
        if upstream == "-":
            continue
        history = [(t, e) for t, e, a in events if a == upstream]
        member = False
        for t, e in history:
            if e == "add" and t <= start + 0.2:
                member = True
            if e == "remove" and t + REMOVAL_GRACE_S <= start:
                member = False
        if not member:
            bad.append((start, status, upstream))
    return bad


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", required=True, help="folder with epp and epp-sim")
    parser.add_argument("--envoy", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--duration", type=float, default=1200, help="seconds of load")
    parser.add_argument("--warmup", type=float, default=180, help="seconds before RSS must be flat")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--servers", type=int, default=4)
    parser.add_argument("--churn-every", type=float, default=20, help="seconds between server changes")
    parser.add_argument("--time-scale", type=float, default=0.1)
    parser.add_argument("--base-port", type=int, default=19400)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rss-growth-kib", type=int, default=8192,
                        help="largest allowed rise of the median RSS from the first to the last third after warm-up")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    rng = random.Random(args.seed)
    grpc, health, metrics, listen, admin = (args.base_port + i for i in range(5))

    cluster = Cluster(args, args.out)
    processes = []
    failures = []
    try:
        for _ in range(args.servers):
            cluster.add(cluster.start_server())
        epp_log = open(os.path.join(args.out, "epp.log"), "w")
        epp = subprocess.Popen(
            [os.path.join(args.bin, "epp"), "--endpoints-file", cluster.file, "--grpc-port", str(grpc),
             "--grpc-health-port", str(health), "--metrics-port", str(metrics), "--secure-serving=false",
             "--health-checking", "--zap-encoder=json"],
            stdout=epp_log, stderr=subprocess.STDOUT)
        processes.append(epp)
        with open("tests/envoy/configs/full-duplex.yaml") as f:
            config = f.read()
        config = (config.replace("{{ADMIN_PORT}}", str(admin)).replace("{{LISTEN_PORT}}", str(listen))
                  .replace("{{EPP_PORT}}", str(grpc)))
        envoy_yaml = os.path.join(args.out, "envoy.yaml")
        with open(envoy_yaml, "w") as f:
            f.write(config)
        access_log = os.path.join(args.out, "envoy-access.log")
        envoy = subprocess.Popen(
            [args.envoy, "-c", envoy_yaml, "--disable-hot-restart", "--concurrency", "1",
             "--log-level", "warn", "--base-id", str(args.base_port)],
            stdout=open(access_log, "w"), stderr=open(os.path.join(args.out, "envoy.log"), "w"))
        processes.append(envoy)
        ready_body = json.dumps({"model": MODEL, "prompt": "ready?", "max_tokens": 1}).encode()
        wait_http(f"http://127.0.0.1:{listen}/v1/completions", 60, data=ready_body)
        log(f"up: epp pid {epp.pid}, envoy pid {envoy.pid}, {args.servers} servers; load for {args.duration:.0f}s")

        stop = threading.Event()
        stats = Stats()
        workers = [threading.Thread(target=worker, args=(listen, args.seed * 1000 + i, stop, stats), daemon=True)
                   for i in range(args.concurrency)]
        for t in workers:
            t.start()
        started = time.time()
        samples = []
        next_churn = started + args.churn_every
        next_sample = started
        while time.time() - started < args.duration:
            now = time.time()
            if epp.poll() is not None:
                failures.append(f"the EPP exited with {epp.returncode}")
                break
            if now >= next_churn:
                cluster.churn_once(rng)
                next_churn += args.churn_every
            cluster.reap()
            if now >= next_sample:
                values = scrape(metrics)
                samples.append({
                    "t": round(now - started, 1), "rss_kib": rss_kib(epp.pid), "cpu_s": round(cpu_seconds(epp.pid), 2),
                    "streams": total(values, "inference_extension_ext_proc_streams"),
                    "in_flight": total(values, "inference_extension_endpoint_in_flight_requests"),
                    "requests": total(values, "inference_model_request_total"),
                    "endpoints": len(cluster.members)})
                next_sample += 5
            time.sleep(0.1)
        stop.set()
        for t in workers:
            t.join(timeout=60)
        load_seconds = time.time() - started
        log("load stopped; waiting for streams to drain")

        # Open streams, in-flight and running requests return to 0.
        deadline = time.time() + 20
        while True:
            values = scrape(metrics)
            leftovers = {name: total(values, name) for name in (
                "inference_extension_ext_proc_streams", "inference_extension_endpoint_in_flight_requests",
                "inference_model_running_requests")}
            if all(v == 0 for v in leftovers.values()) or time.time() > deadline:
                break
            time.sleep(0.5)
        for name, value in leftovers.items():
            if value != 0:
                failures.append(f"{name} is {value} after the load stopped")

        # RSS flat after warm-up.
        after = [s["rss_kib"] for s in samples if s["t"] >= args.warmup]
        rss = {}
        if len(after) >= 6:
            third = len(after) // 3
            first, last = statistics.median(after[:third]), statistics.median(after[-third:])
            rss = {"warm_first_third_median_kib": first, "warm_last_third_median_kib": last,
                   "max_kib": max(after), "growth_kib": last - first}
            if last - first > args.rss_growth_kib:
                failures.append(f"RSS grew by {last - first:.0f} KiB after warm-up (limit {args.rss_growth_kib})")
        else:
            failures.append("too few samples after warm-up to judge RSS (run longer than --warmup)")

        # Statuses per kind.
        kinds = {}
        for (kind, outcome), n in sorted(stats.counts.items()):
            kinds.setdefault(kind, {})[outcome] = n
        for kind, outcomes in kinds.items():
            n = sum(outcomes.values())
            expected = EXPECTED.get(kind, {200})
            good = sum(c for o, c in outcomes.items() if o in {str(s) for s in expected}) if expected else n
            if kind == "cancel_mid_request":
                good = n
            # Servers are killed under load: a few requests they were running fail.
            if good < 0.95 * n:
                failures.append(f"{kind}: only {good} of {n} requests got {sorted(expected)}: {outcomes}")

        epp.send_signal(signal.SIGTERM)
        epp.wait(timeout=30)
        envoy.terminate()
        envoy.wait(timeout=30)
        epp_log.close()
        with open(os.path.join(args.out, "epp.log")) as f:
            epp_text = f.read()
        if "panicked" in epp_text:
            failures.append("the EPP log shows a panic")

        rows = parse_access_log(access_log)
        bad = outside_pool(rows, cluster.events)
        if bad:
            failures.append(f"{len(bad)} requests routed outside the pool, e.g. {bad[:3]}")
        routed = sum(1 for r in rows if r[2] != "-")

        summary = {
            "load_seconds": round(load_seconds), "requests_by_kind": kinds,
            "requests_total": sum(sum(o.values()) for o in kinds.values()),
            "access_log_lines": len(rows), "routed_to_an_upstream": routed, "outside_pool": len(bad),
            "membership_changes": len(cluster.events) - args.servers,
            "epp_cpu_seconds": samples[-1]["cpu_s"] if samples else None, "rss": rss,
            "leftovers_after_load": leftovers, "unexpected_examples": stats.examples, "failures": failures,
        }
        with open(os.path.join(args.out, "summary.json"), "w") as f:
            json.dump(summary, f, indent=2)
        with open(os.path.join(args.out, "samples.csv"), "w") as f:
            f.write("t,rss_kib,cpu_s,streams,in_flight,requests,endpoints\n")
            for s in samples:
                f.write(",".join(str(s[k]) for k in ("t", "rss_kib", "cpu_s", "streams", "in_flight", "requests",
                                                      "endpoints")) + "\n")
        print(json.dumps(summary, indent=2))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
        cluster.stop()
    if failures:
        log("FAILED: " + "; ".join(failures))
        sys.exit(1)
    log("passed")


if __name__ == "__main__":
    main()
