#!/usr/bin/env bash
# Precise against approximate prefix routing, end to end on loopback:
#   epp-bench proxy -> Envoy (full duplex) -> epp (policy config) -> epp-sim servers,
# where the servers publish their KV-cache events over ZMQ (vLLM's format) and serve
# /tokenize. The shared prefixes (PREFIX_GROUPS x SYSTEM tokens) exceed one server's KV cache
# (BLOCKS x 16 tokens), so where a prefix lives matters. Prints TTFT p50/p90 and the servers'
# prefix-cache hit rate (vllm:prefix_cache_hits_total / queries_total) per policy.
#
#   scripts/precise-vs-approximate.sh
#   DURATION=30s RATE=8 scripts/precise-vs-approximate.sh
#
# Knobs: SERVERS (4), PREFIX_GROUPS (24), PER_GROUP (8), SYSTEM (1500 tokens), QUESTION (100),
# OUTPUT (32), RATE (10 req/s, Poisson), DURATION (40s), BLOCKS (1200 blocks of 16 tokens per
# server), POLICIES ("precise approximate"), DROP (KV-event drop ratio at the servers, 0),
# REPLICAS (1 or 2 EPPs behind Envoy, which spreads ext_proc streams over them: each
# replica's approximate index then sees only its share of the traffic, while every replica
# sees all KV events), OUT (report folder), SKIP_BUILD=1, BASE_PORT (18701).
set -euo pipefail
cd "$(dirname "$0")/.."

SERVERS=${SERVERS:-4}
PREFIX_GROUPS=${PREFIX_GROUPS:-24}
PER_GROUP=${PER_GROUP:-8}
SYSTEM=${SYSTEM:-1500}
QUESTION=${QUESTION:-100}
OUTPUT=${OUTPUT:-32}
RATE=${RATE:-10}
DURATION=${DURATION:-40s}
BLOCKS=${BLOCKS:-1200}
DROP=${DROP:-0}
REPLICAS=${REPLICAS:-1}
POLICIES=${POLICIES:-precise approximate}
BASE_PORT=${BASE_PORT:-18701}
OUT=${OUT:-benches/results/precise-vs-approximate-$(date +%Y%m%d-%H%M%S)}
BIN=${CARGO_TARGET_DIR:-target}/release
MODEL=meta-llama/Llama-3.1-8B-Instruct
KV_PORT=$((BASE_PORT + 40))

if [ "${SKIP_BUILD:-0}" != 1 ]; then
    cargo build --release --bin epp --bin epp-bench --bin epp-sim >&2
fi
ENVOY=$(.ci/install-envoy)
mkdir -p "$OUT"

policy_config() { # name
    case "$1" in
    approximate) cat plugins-config/default-plugins.yaml ;;
    precise)
        cat <<YAML
apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: precise-prefix-cache-scorer
  parameters:
    blockSize: 16
    kvEventsPort: $KV_PORT
    tokenizer: {source: model-server, timeout: 100ms}
- type: queue-scorer
- type: kv-cache-utilization-scorer
- type: max-score-picker
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: precise-prefix-cache-scorer
  - pluginRef: queue-scorer
  - pluginRef: kv-cache-utilization-scorer
  - pluginRef: max-score-picker
YAML
        ;;
    *) echo "precise-vs-approximate: unknown policy $1" >&2; exit 2 ;;
    esac
}

pids=()
stop_all() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    pids=()
}
trap stop_all EXIT
SIM=()
for i in $(seq 0 $((SERVERS - 1))); do SIM+=($((BASE_PORT + i))); done
EPP_PORT=$((BASE_PORT + 10))
LISTEN=$((BASE_PORT + 20))
hit_rate() { # the servers' prefix-cache hits / queries, summed
    local hits=0 queries=0
    for port in "${SIM[@]}"; do
        page=$(curl -fs "http://127.0.0.1:$port/metrics")
        h=$(echo "$page" | awk '/^vllm:prefix_cache_hits_total/ {s+=$2} END {print s+0}')
        q=$(echo "$page" | awk '/^vllm:prefix_cache_queries_total/ {s+=$2} END {print s+0}')
        hits=$(python3 -c "print($hits + $h)")
        queries=$(python3 -c "print($queries + $q)")
    done
    python3 -c "print(f'{$hits / max($queries, 1):.3f}')"
}
for policy in $POLICIES; do
    policy_config "$policy" >"$OUT/$policy.yaml"
    "$BIN/epp-sim" --servers "$SERVERS" --base-port "${SIM[0]}" --num-gpu-blocks "$BLOCKS" \
        --max-model-len $((BLOCKS * 16)) --kv-events-port "$KV_PORT" \
        --kv-events-drop-ratio "$DROP" >"$OUT/sim-$policy.log" 2>&1 &
    pids+=($!)
    for r in $(seq 0 $((REPLICAS - 1))); do
        port=$((EPP_PORT + 4 * r))
        "$BIN/epp" --endpoints "$(printf '127.0.0.1:%s,' "${SIM[@]}" | sed 's/,$//')" \
            --config-file "$OUT/$policy.yaml" --grpc-port "$port" \
            --grpc-health-port $((port + 1)) --metrics-port $((port + 2)) \
            --secure-serving=false --health-checking >"$OUT/epp-$policy-$r.log" 2>&1 &
        pids+=($!)
    done
    sed -e "s/{{ADMIN_PORT}}/$((LISTEN + 100))/; s/{{LISTEN_PORT}}/$LISTEN/; s/{{EPP_PORT}}/$EPP_PORT/" \
        -e "s/{{SIM_PORT_1}}/${SIM[0]}/g; s/{{SIM_PORT_2}}/${SIM[1]:-${SIM[0]}}/g; s/{{SIM_PORT_3}}/${SIM[2]:-${SIM[0]}}/g" \
        tests/envoy/configs/full-duplex.yaml >"$OUT/envoy.yaml"
    if [ "$REPLICAS" = 2 ]; then # a second EPP host in the ext_proc cluster
        python3 - "$OUT/envoy.yaml" "$EPP_PORT" $((EPP_PORT + 4)) <<'PY'
import sys
path, first, second = sys.argv[1], sys.argv[2], sys.argv[3]
text = open(path).read()
line = "socket_address: { address: 127.0.0.1, port_value: %s }" % first
at = text.index(line)
start = text.rindex("\n", 0, at) + 1
indent = text[start:at]
endpoint = text.rindex("- endpoint:", 0, at)
block = text[text.rindex("\n", 0, endpoint) + 1 : at + len(line)] + "\n"
text = text[: at + len(line) + 1] + block.replace(first, second) + text[at + len(line) + 1 :]
open(path, "w").write(text)
PY
    fi
    "$ENVOY" -c "$OUT/envoy.yaml" --disable-hot-restart --concurrency 1 --log-level warn \
        --base-id "$BASE_PORT" >"$OUT/envoy-$policy.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 1 100); do
        curl -fs -o /dev/null -m 2 "http://127.0.0.1:$LISTEN/v1/models" && break
        sleep 0.2
    done
    sleep 1
    echo "== $policy: $RATE req/s for $DURATION through Envoy" >&2
    "$BIN/epp-bench" proxy --url "http://127.0.0.1:$LISTEN/v1/completions" \
        --workload shared-prefix --groups "$PREFIX_GROUPS" --prompts-per-group "$PER_GROUP" \
        --system-prompt-len "$SYSTEM" --question-len "$QUESTION" --model "$MODEL" \
        --max-tokens "$OUTPUT" --rate "$RATE" --arrival poisson --duration "$DURATION" \
        --warmup 0 --quiet --json "$OUT/real-$policy.json" >"$OUT/real-$policy.txt"
    hit_rate >"$OUT/hit-$policy.txt"
    for r in $(seq 0 $((REPLICAS - 1))); do
        curl -fs "http://127.0.0.1:$((EPP_PORT + 4 * r + 2))/metrics" >"$OUT/epp-metrics-$policy-$r.txt" || true
    done
    stop_all
done

python3 - "$OUT" $POLICIES <<'PY'
import json, sys
out, policies = sys.argv[1], sys.argv[2:]
rows = {}
print(f"{'policy':12} {'TTFT p50 ms':>12} {'TTFT p90 ms':>12} {'hit rate':>9} {'ok':>6} {'errors':>7}")
for p in policies:
    t = json.load(open(f"{out}/real-{p}.json"))["targets"][0]
    ttft = t["latency"]["ttft"]
    hit = float(open(f"{out}/hit-{p}.txt").read())
    rows[p] = (ttft["p50_us"] / 1000, ttft["p90_us"] / 1000, hit)
    print(f"{p:12} {rows[p][0]:12.1f} {rows[p][1]:12.1f} {hit:9.3f} {t['requests_ok']:>6} {t['errors_total']:>7}")
if "precise" in rows and "approximate" in rows:
    a, b = rows["approximate"], rows["precise"]
    print(f"approximate / precise TTFT p90: {a[1] / b[1]:.2f}x; hit rate {b[2]:.3f} vs {a[2]:.3f}")
PY
echo "reports in $OUT" >&2
