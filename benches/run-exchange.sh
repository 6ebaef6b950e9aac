#!/usr/bin/env bash
# Benchmark 1: the cost of one ext_proc exchange in the EPP against a no-op ext_proc server,
# in the same run, FULL_DUPLEX_STREAMED, for 4 KB, 64 KB and 220 KB prompts at concurrency
# 1, 16 and 150. Prints a markdown table (p50/p99 of the whole exchange, throughput, ratios)
# and keeps every JSON report.
#
#   benches/run-exchange.sh                       # build, run, print the table
#   SIZES="4096" CONCURRENCY="16" DURATION=5s benches/run-exchange.sh
#
# Knobs (environment): SIZES, CONCURRENCY, DURATION (per target per cell), ROUNDS (the
# duration is split into rounds that alternate EPP and no-op), WARMUP (requests), OUT (report
# folder), SKIP_BUILD=1, EPP_ARGS (extra epp flags), BASE_PORT (epp-sim ports from here),
# EPP_TLS=1 (the EPP on its default self-signed TLS, and the no-op on TLS too), EPP (the
# epp binary to measure), BASELINE=process|in-process (the no-op as its own process,
# `epp-bench noop`, as the EPP is: the default; or inside epp-bench, `--baseline`),
# NOOP_PORT (19010).
set -euo pipefail
cd "$(dirname "$0")/.."

SIZES=${SIZES:-"4096 65536 225280"}
CONCURRENCY=${CONCURRENCY:-"1 16 150"}
DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-2}
WARMUP=${WARMUP:-500}
BASE_PORT=${BASE_PORT:-18101}
GRPC_PORT=${GRPC_PORT:-19002}
NOOP_PORT=${NOOP_PORT:-19010}
BASELINE=${BASELINE:-process}
OUT=${OUT:-benches/results/exchange-$(date +%Y%m%d-%H%M%S)}
BIN=${CARGO_TARGET_DIR:-target}/release
EPP=${EPP:-$BIN/epp}

if [ "${SKIP_BUILD:-0}" != 1 ]; then
    cargo build --release --bin epp --bin epp-bench --bin epp-sim >&2
fi
mkdir -p "$OUT"

pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

# Four simulated vLLM servers for the EPP to scrape (direct mode sends them no traffic).
"$BIN/epp-sim" --servers 4 --base-port "$BASE_PORT" >"$OUT/epp-sim.log" 2>&1 &
pids+=($!)
endpoints=$(seq -s, -f "127.0.0.1:%g" "$BASE_PORT" $((BASE_PORT + 3)))

tls_bench=()
tls_epp=(--secure-serving=false)
if [ "${EPP_TLS:-0}" = 1 ]; then
    tls_bench=(--tls)
    tls_epp=()
fi

# shellcheck disable=SC2086 # EPP_ARGS is a list of flags
"$EPP" --endpoints "$endpoints" "${tls_epp[@]}" --grpc-port "$GRPC_PORT" \
    --grpc-health-port $((GRPC_PORT + 1)) ${EPP_ARGS:-} >"$OUT/epp.log" 2>&1 &
pids+=($!)

baseline=(--baseline)
wait_ports=("$GRPC_PORT")
case "$BASELINE" in
process)
    "$BIN/epp-bench" noop --listen "127.0.0.1:$NOOP_PORT" "${tls_bench[@]}" >"$OUT/noop.log" 2>&1 &
    pids+=($!)
    baseline=(--baseline-target "127.0.0.1:$NOOP_PORT")
    wait_ports+=("$NOOP_PORT")
    ;;
in-process) ;;
*) echo "BASELINE must be process or in-process, not '$BASELINE'" >&2; exit 2 ;;
esac

# Wait for the ext_proc ports (bash's /dev/tcp, no extra tools).
for port in "${wait_ports[@]}"; do
    for _ in $(seq 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
        sleep 0.1
    done
done

for size in $SIZES; do
    for c in $CONCURRENCY; do
        echo "== prompt $size bytes, concurrency $c" >&2
        "$BIN/epp-bench" direct --target "127.0.0.1:$GRPC_PORT" --mode full-duplex \
            --workload fixed --prompt-bytes "$size" --concurrency "$c" \
            --duration "$DURATION" --rounds "$ROUNDS" --warmup "$WARMUP" \
            "${baseline[@]}" "${tls_bench[@]}" --quiet --json "$OUT/size$size-c$c.json" >&2
    done
done

python3 - "$OUT" <<'EOF'
import json, pathlib, sys

out = pathlib.Path(sys.argv[1])
reports = sorted(
    (json.loads(p.read_text()) for p in out.glob("size*-c*.json")),
    key=lambda r: (int(r["config"]["prompt-bytes"]), int(r["config"]["concurrency"])),
)
ms = lambda us: f"{us / 1000:.2f}"
print(f"| prompt | body | c | EPP p50 ms | EPP p99 ms | no-op p50 ms | no-op p99 ms "
      f"| p99 ratio | EPP req/s | no-op req/s | errors |")
print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for r in reports:
    epp, noop = r["targets"]
    e, n = epp["latency"]["exchange"], noop["latency"]["exchange"]
    errors = epp["errors_total"] + noop["errors_total"]
    print(f"| {r['config']['prompt-bytes']} | {r['workload']['body_bytes_max']} "
          f"| {r['config']['concurrency']} | {ms(e['p50_us'])} | {ms(e['p99_us'])} "
          f"| {ms(n['p50_us'])} | {ms(n['p99_us'])} | {r['ratio']['p99']:.2f}x "
          f"| {epp['throughput_rps']:.0f} | {noop['throughput_rps']:.0f} | {errors} |")
print(f"\nreports: {out}")
EOF
