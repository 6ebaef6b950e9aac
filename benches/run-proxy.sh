#!/usr/bin/env bash
# Benchmark 2: the long-prompt case through a real Envoy, and the EPP's own router mode.
# 4 simulated vLLM servers answer at once (--time-scale 0.001), so what is measured is the
# gateway path. The same client load goes, in the same run, to each target of TARGETS:
#   - "epp":      Envoy with tests/envoy/configs/full-duplex.yaml (upstream's e2e config, the EPP picks)
#   - "baseline": Envoy with tests/envoy/configs/no-ext-proc.yaml (round robin, no ext_proc), 4 servers
#   - "router":   the same EPP's router mode (--proxy-port): it picks and forwards itself
#   - "direct":   straight to the first simulated server (no proxy at all: the floor)
# and the report gives TTFT and end-to-end latency from the client side, and throughput.
#
#   benches/run-proxy.sh                                  # 220 KB prompts, concurrency 150
#   PROMPT_BYTES=4096 CONCURRENCY=16 DURATION=10s benches/run-proxy.sh
#
# Knobs: PROMPT_BYTES (225280), CONCURRENCY (150), DURATION (20s per target), WARMUP (200),
# OUT (report folder), SKIP_BUILD=1, BASE_PORT (18301: simulators, then Envoys and the EPP),
# ENVOY_WORKERS (1: each Envoy's --concurrency), RATE (requests/s, Poisson arrivals: an
# open loop instead of CONCURRENCY's closed loop, to see the latency ext_proc adds below
# saturation rather than the queueing at it), TARGETS ("epp baseline router": any of
# epp, baseline, router, direct, in that order of runs).
set -euo pipefail
cd "$(dirname "$0")/.."

PROMPT_BYTES=${PROMPT_BYTES:-225280}
CONCURRENCY=${CONCURRENCY:-150}
DURATION=${DURATION:-20s}
WARMUP=${WARMUP:-200}
BASE_PORT=${BASE_PORT:-18301}
ENVOY_WORKERS=${ENVOY_WORKERS:-1}
TARGETS=${TARGETS:-"epp baseline router"}
if [ -n "${RATE:-}" ]; then
    load=(--rate "$RATE" --arrival poisson)
    load_text="$RATE req/s (Poisson)"
else
    load=(--concurrency "$CONCURRENCY")
    load_text="concurrency $CONCURRENCY"
fi
OUT=${OUT:-benches/results/proxy-$(date +%Y%m%d-%H%M%S)}
BIN=${CARGO_TARGET_DIR:-target}/release

if [ "${SKIP_BUILD:-0}" != 1 ]; then
    cargo build --release --bin epp --bin epp-bench --bin epp-sim >&2
fi
ENVOY=$(.ci/install-envoy)
mkdir -p "$OUT"

pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

SIM=("$BASE_PORT" $((BASE_PORT + 1)) $((BASE_PORT + 2)) $((BASE_PORT + 3)))
EPP_PORT=$((BASE_PORT + 10))
EPP_LISTEN=$((BASE_PORT + 20))
BASE_LISTEN=$((BASE_PORT + 21))
ROUTER_PORT=$((BASE_PORT + 30))

# Room for 56k-token prompts at concurrency 150, and no modelled GPU time.
"$BIN/epp-sim" --servers 4 --base-port "${SIM[0]}" --time-scale 0.001 \
    --max-model-len 100000 --num-gpu-blocks 2000000 >"$OUT/sim.log" 2>&1 &
pids+=($!)
"$BIN/epp" --endpoints "$(printf '127.0.0.1:%s,' "${SIM[@]}" | sed 's/,$//')" \
    --grpc-port "$EPP_PORT" --grpc-health-port $((EPP_PORT + 1)) --metrics-port $((EPP_PORT + 2)) \
    --proxy-port "$ROUTER_PORT" --secure-serving=false --health-checking >"$OUT/epp.log" 2>&1 &
pids+=($!)

render() { # config listen-port admin-port
    sed -e "s/{{ADMIN_PORT}}/$3/; s/{{LISTEN_PORT}}/$2/; s/{{EPP_PORT}}/$EPP_PORT/" \
        -e "s/{{SIM_PORT_1}}/${SIM[0]}/g; s/{{SIM_PORT_2}}/${SIM[1]}/g; s/{{SIM_PORT_3}}/${SIM[2]}/g" \
        "tests/envoy/configs/$1"
}
render full-duplex.yaml "$EPP_LISTEN" $((EPP_LISTEN + 100)) >"$OUT/envoy-epp.yaml"
# The baseline gets the fourth server too.
render no-ext-proc.yaml "$BASE_LISTEN" $((BASE_LISTEN + 100)) |
    sed "/port_value: ${SIM[2]} } } }/p; s/port_value: ${SIM[2]} } } }/port_value: ${SIM[3]} } } }/" \
        >"$OUT/envoy-baseline.yaml"
for name in epp baseline; do
    "$ENVOY" -c "$OUT/envoy-$name.yaml" --disable-hot-restart --concurrency "$ENVOY_WORKERS" \
        --log-level warn --base-id $((BASE_PORT + ${#pids[@]})) >"$OUT/envoy-$name.log" 2>&1 &
    pids+=($!)
done

wait_ready() { # url
    for _ in $(seq 1 100); do
        curl -fs -o /dev/null "$1" -d '{"model":"meta-llama/Llama-3.1-8B-Instruct","prompt":"ready?","max_tokens":1}' && return 0
        sleep 0.2
    done
    echo "run-proxy: $1 never answered (logs in $OUT)" >&2
    exit 1
}
wait_ready "http://127.0.0.1:$EPP_LISTEN/v1/completions"
wait_ready "http://127.0.0.1:$BASE_LISTEN/v1/completions"
wait_ready "http://127.0.0.1:$ROUTER_PORT/v1/completions"

for name in $TARGETS; do
    case "$name" in
    epp) port=$EPP_LISTEN ;;
    baseline) port=$BASE_LISTEN ;;
    router) port=$ROUTER_PORT ;;
    direct) port=${SIM[0]} ;;
    *) echo "run-proxy: unknown target '$name' (epp, baseline, router, direct)" >&2; exit 2 ;;
    esac
    echo "== $name: ${PROMPT_BYTES} B prompts, $load_text, $DURATION" >&2
    "$BIN/epp-bench" proxy --url "http://127.0.0.1:$port/v1/completions" \
        --prompt-bytes "$PROMPT_BYTES" "${load[@]}" --duration "$DURATION" \
        --warmup "$WARMUP" --max-tokens 16 --quiet --json "$OUT/$name.json" | tee "$OUT/$name.txt"
done
echo "reports in $OUT" >&2
