#!/usr/bin/env bash
# The cost of --tracing: two EPPs side by side over the same 4 simulated servers, one with
# tracing off and one exporting every request's spans (OTEL_TRACES_SAMPLER=always_on) to a
# counting OTLP/gRPC sink (examples/otlp_sink), measured by `epp-bench direct` in
# alternating rounds (the traced EPP is the target, the untraced one the baseline), plus
# each EPP's CPU time per exchange from /proc.
#
#   benches/run-tracing.sh
#   SIZES="4096" CONCURRENCY="1 16" DURATION=8s ROUNDS=4 SKIP_BUILD=1 benches/run-tracing.sh
set -euo pipefail
cd "$(dirname "$0")/.."

SIZES=${SIZES:-"4096"}
CONCURRENCY=${CONCURRENCY:-"1 16"}
DURATION=${DURATION:-8s}
ROUNDS=${ROUNDS:-4}
WARMUP=${WARMUP:-500}
BASE_PORT=${BASE_PORT:-18201}
OFF_PORT=${OFF_PORT:-19102}
ON_PORT=${ON_PORT:-19112}
SINK_PORT=${SINK_PORT:-19120}
OUT=${OUT:-benches/results/tracing-$(date +%Y%m%d-%H%M%S)}
BIN=${CARGO_TARGET_DIR:-target}/release

if [ "${SKIP_BUILD:-0}" != 1 ]; then
    cargo build --release --bin epp --bin epp-bench --bin epp-sim --example otlp_sink >&2
fi
mkdir -p "$OUT"

pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

"$BIN/epp-sim" --servers 4 --base-port "$BASE_PORT" >"$OUT/epp-sim.log" 2>&1 &
pids+=($!)
"$BIN/examples/otlp_sink" "127.0.0.1:$SINK_PORT" >"$OUT/sink.log" 2>&1 &
pids+=($!)
endpoints=$(seq -s, -f "127.0.0.1:%g" "$BASE_PORT" $((BASE_PORT + 3)))

"$BIN/epp" --endpoints "$endpoints" --secure-serving=false --tracing=false \
    --grpc-port "$OFF_PORT" --grpc-health-port $((OFF_PORT + 1)) --metrics-port $((OFF_PORT + 2)) \
    >"$OUT/epp-off.log" 2>&1 &
off_pid=$!
pids+=($off_pid)
OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$SINK_PORT" OTEL_TRACES_SAMPLER=always_on \
    "$BIN/epp" --endpoints "$endpoints" --secure-serving=false \
    --grpc-port "$ON_PORT" --grpc-health-port $((ON_PORT + 1)) --metrics-port $((ON_PORT + 2)) \
    >"$OUT/epp-on.log" 2>&1 &
on_pid=$!
pids+=($on_pid)

for port in "$OFF_PORT" "$ON_PORT" "$SINK_PORT"; do
    for _ in $(seq 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
        sleep 0.1
    done
done

# utime + stime of a process, in clock ticks.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

for size in $SIZES; do
    for c in $CONCURRENCY; do
        echo "== prompt $size bytes, concurrency $c" >&2
        on0=$(ticks "$on_pid"); off0=$(ticks "$off_pid")
        "$BIN/epp-bench" direct --target "127.0.0.1:$ON_PORT" --mode full-duplex \
            --workload fixed --prompt-bytes "$size" --concurrency "$c" \
            --duration "$DURATION" --rounds "$ROUNDS" --warmup "$WARMUP" \
            --baseline-target "127.0.0.1:$OFF_PORT" --quiet --json "$OUT/size$size-c$c.json" >&2
        echo "$(( $(ticks "$on_pid") - on0 )) $(( $(ticks "$off_pid") - off0 ))" \
            >"$OUT/size$size-c$c.cpu"
    done
done
kill -TERM "$on_pid"
wait "$on_pid" 2>/dev/null || true
sleep 1

python3 - "$OUT" "$(getconf CLK_TCK)" "$WARMUP" <<'PY'
import json, pathlib, sys

out, hz, warmup = pathlib.Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
reports = sorted(
    (p for p in out.glob("size*-c*.json")),
    key=lambda p: [int(x) for x in p.stem.replace("size", "").split("-c")],
)
ms = lambda us: f"{us / 1000:.2f}"
print("| prompt | c | on p50 ms | on p99 ms | off p50 ms | off p99 ms | p50 ratio | p99 ratio "
      "| on req/s | off req/s | on CPU µs/exch | off CPU µs/exch | errors |")
print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for path in reports:
    r = json.loads(path.read_text())
    on, off = r["targets"]
    e, n = on["latency"]["exchange"], off["latency"]["exchange"]
    on_ticks, off_ticks = map(int, path.with_suffix(".cpu").read_text().split())
    # The CPU window includes the warm-up exchanges.
    cpu = lambda t, tgt: f"{t / hz * 1e6 / (tgt['requests_ok'] + tgt['errors_total'] + warmup):.0f}"
    print(f"| {r['config']['prompt-bytes']} | {r['config']['concurrency']} "
          f"| {ms(e['p50_us'])} | {ms(e['p99_us'])} | {ms(n['p50_us'])} | {ms(n['p99_us'])} "
          f"| {e['p50_us'] / n['p50_us']:.2f}x | {r['ratio']['p99']:.2f}x "
          f"| {on['throughput_rps']:.0f} | {off['throughput_rps']:.0f} "
          f"| {cpu(on_ticks, on)} | {cpu(off_ticks, off)} "
          f"| {on['errors_total'] + off['errors_total']} |")
sink = (out / "sink.log").read_text().strip().splitlines()
print(f"\nsink: {sink[-1] if sink else 'no output'}")
print(f"reports: {out}")
PY
grep -h "trace spans\|dropped" "$OUT/epp-on.log" | tail -3 || true
