#!/usr/bin/env bash
# Fidelity check 2 of docs/lab.md: the same small shared-prefix workload, per policy,
#   (a) in real time: epp-bench proxy -> Envoy -> epp (the policy's config) -> epp-sim servers,
#   (b) in virtual time: epp-lab, with the same engine limits and step-time coefficients,
# then a table of TTFT p50 and the ordering from each side. Too slow for CI (DURATION per
# policy of wall time); run by hand on an idle machine.
#
#   scripts/lab-vs-realtime.sh
#   DURATION=30s RATE=4 POLICIES="approximate random" scripts/lab-vs-realtime.sh
#
# Knobs: SERVERS (2), PREFIX_GROUPS (12), PER_GROUP (4), SYSTEM (2000 tokens), QUESTION (200),
# OUTPUT (64 tokens), RATE (6 req/s, Poisson), DURATION (60s), BLOCKS (1000 KV blocks of 16
# tokens per server: the shared prefixes, PREFIX_GROUPS x SYSTEM tokens, exceed one server's cache),
# POLICIES ("approximate load random"), OUT (report folder), SKIP_BUILD=1, BASE_PORT (18601).
set -euo pipefail
cd "$(dirname "$0")/.."

SERVERS=${SERVERS:-2}
PREFIX_GROUPS=${PREFIX_GROUPS:-12}
PER_GROUP=${PER_GROUP:-4}
SYSTEM=${SYSTEM:-2000}
QUESTION=${QUESTION:-200}
OUTPUT=${OUTPUT:-64}
RATE=${RATE:-6}
DURATION=${DURATION:-60s}
BLOCKS=${BLOCKS:-1000}
POLICIES=${POLICIES:-approximate load random}
BASE_PORT=${BASE_PORT:-18601}
OUT=${OUT:-benches/results/lab-vs-realtime-$(date +%Y%m%d-%H%M%S)}
BIN=${CARGO_TARGET_DIR:-target}/release
MODEL=meta-llama/Llama-3.1-8B-Instruct

if [ "${SKIP_BUILD:-0}" != 1 ]; then
    cargo build --release --bin epp --bin epp-bench --bin epp-sim --bin epp-lab >&2
fi
ENVOY=$(.ci/install-envoy)
mkdir -p "$OUT"
seconds=${DURATION%s}

policy_config() { # name
    case "$1" in
    approximate) cat plugins-config/default-plugins.yaml ;;
    load)
        cat <<'YAML'
apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: queue-scorer
- type: kv-cache-utilization-scorer
- type: max-score-picker
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: queue-scorer
  - pluginRef: kv-cache-utilization-scorer
  - pluginRef: max-score-picker
YAML
        ;;
    random)
        cat <<'YAML'
apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: random-picker
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: random-picker
YAML
        ;;
    *) echo "lab-vs-realtime: unknown policy $1" >&2; exit 2 ;;
    esac
}

# (b) the lab: one experiment with every policy. epp-sim's defaults are the linear step
# model below, max_num_seqs 1024, max_num_batched_tokens 8192, block 16.
{
    cat <<YAML
name: lab-vs-realtime
cluster:
  profile: llama-3.1-8b-h100-tp1
  pods: $SERVERS
  kv_capacity_tokens: $((BLOCKS * 16))
  block_size: 16
  max_num_batched_tokens: 8192
  max_num_seqs: 1024
  step_time: {linear: {base_ms: 7, per_prefill_token_us: 35, per_decode_seq_us: 5, per_context_token_ns: 76}}
  overheads: {frontend_ms: 1, per_token_us: 0, end_ms: 0}
model_name: $MODEL
workload:
  data:
    type: shared_prefix
    shared_prefix: {num_groups: $PREFIX_GROUPS, num_prompts_per_group: $PER_GROUP, system_prompt_len: $SYSTEM, question_len: $QUESTION, output_len: $OUTPUT}
  load:
    type: poisson
    stages: [{rate: $RATE, duration: $seconds}]
signals: {scrape_interval: 50ms, metrics_staleness: 2s}
seeds: [1, 2, 3]
policies:
YAML
    for policy in $POLICIES; do
        echo "  - name: $policy"
        echo "    config: |"
        policy_config "$policy" | sed 's/^/      /'
    done
} >"$OUT/experiment.yaml"
"$BIN/epp-lab" run "$OUT/experiment.yaml" --out "$OUT/lab" --quiet --no-plots >"$OUT/lab.txt"

# (a) real time, one policy at a time, each on cold servers.
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
for policy in $POLICIES; do
    policy_config "$policy" >"$OUT/$policy.yaml"
    "$BIN/epp-sim" --servers "$SERVERS" --base-port "${SIM[0]}" --num-gpu-blocks "$BLOCKS" \
        --max-model-len $((BLOCKS * 16)) >"$OUT/sim-$policy.log" 2>&1 &
    pids+=($!)
    "$BIN/epp" --endpoints "$(printf '127.0.0.1:%s,' "${SIM[@]}" | sed 's/,$//')" \
        --config-file "$OUT/$policy.yaml" --grpc-port "$EPP_PORT" \
        --grpc-health-port $((EPP_PORT + 1)) --metrics-port $((EPP_PORT + 2)) \
        --secure-serving=false --health-checking >"$OUT/epp-$policy.log" 2>&1 &
    pids+=($!)
    sed -e "s/{{ADMIN_PORT}}/$((LISTEN + 100))/; s/{{LISTEN_PORT}}/$LISTEN/; s/{{EPP_PORT}}/$EPP_PORT/" \
        -e "s/{{SIM_PORT_1}}/${SIM[0]}/g; s/{{SIM_PORT_2}}/${SIM[1]:-${SIM[0]}}/g; s/{{SIM_PORT_3}}/${SIM[2]:-${SIM[0]}}/g" \
        tests/envoy/configs/full-duplex.yaml >"$OUT/envoy.yaml"
    "$ENVOY" -c "$OUT/envoy.yaml" --disable-hot-restart --concurrency 1 --log-level warn \
        --base-id "$BASE_PORT" >"$OUT/envoy-$policy.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 1 100); do
        curl -fs -o /dev/null "http://127.0.0.1:$LISTEN/health" && break
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
    stop_all
done

python3 - "$OUT" $POLICIES <<'PY'
import json, sys
out, policies = sys.argv[1], sys.argv[2:]
lab = json.load(open(f"{out}/lab/summary.json"))["policies"]
def real_ttft(policy):
    report = json.load(open(f"{out}/real-{policy}.json"))
    target = report["targets"][0]
    return target["latency"]["ttft"]["p50_us"] / 1000, target
rows = []
print(f"{'policy':12} {'real TTFT p50 ms':>17} {'lab TTFT p50 ms':>16} {'lab/real':>9}")
for p in policies:
    real, _ = real_ttft(p)
    sim = lab[p]["overall"]["ttft_ms"]["p50"]
    rows.append((p, real, sim))
    print(f"{p:12} {real:17.1f} {sim:16.1f} {sim / real:9.2f}")
order = lambda i: [r[0] for r in sorted(rows, key=lambda r: r[i])]
print("ordering by TTFT p50, real:", " < ".join(order(1)))
print("ordering by TTFT p50, lab: ", " < ".join(order(2)))
PY
echo "reports in $OUT" >&2
