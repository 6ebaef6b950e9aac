#!/usr/bin/env bash
# The whole stack on loopback: Envoy 1.40 (the pinned wheel, .ci/install-envoy) in front of
# the EPP (`epp`) over four simulated vLLM servers (`epp-sim`), in Envoy's FULL_DUPLEX_STREAMED
# body mode (`duplex`, upstream's config) or BUFFERED (`buffered`, Envoy AI Gateway's mode).
# It waits until a request goes through, prints the commands to try, and stops everything it
# started on exit or Ctrl-C.
#
#   scripts/demo.sh [duplex|buffered] [--release] [--check]
#
#   --release   use target/release binaries (default: target/debug); each run does
#               `cargo build` first, a no-op when they are up to date
#   --check     send a completion and a streamed chat through Envoy, print the answers, stop;
#               exit 1 when either fails (the tests run this)
#
# Ports (environment, defaults in brackets): DEMO_PORT [8081] where clients send requests,
# DEMO_ADMIN_PORT [9901] Envoy admin, DEMO_SIM_PORT [8001] first of the 4 servers (8001-8004),
# DEMO_EPP_PORT [9002] ext_proc, DEMO_HEALTH_PORT [9003] gRPC health, DEMO_METRICS_PORT [9090].
# DEMO_MODEL [meta-llama/Llama-3.1-8B-Instruct] is the served model (epp-sim's and epp-bench's
# default). EPP_BIN, EPP_SIM_BIN and ENVOY_BIN use those binaries instead of building or
# installing them. Logs and the filled-in Envoy config go to DEMO_DIR [a fresh temp dir].
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
fail() {
    echo "demo: $*" >&2
    exit 1
}

MODE=duplex PROFILE=debug CHECK=false
for arg in "$@"; do
    case $arg in
    duplex | buffered) MODE=$arg ;;
    --release) PROFILE=release ;;
    --check) CHECK=true ;;
    -h | --help)
        usage
        exit 0
        ;;
    *) fail "unknown argument '$arg' (expected duplex, buffered, --release, --check or --help)" ;;
    esac
done

PORT=${DEMO_PORT:-8081}
ADMIN_PORT=${DEMO_ADMIN_PORT:-9901}
SIM_PORT=${DEMO_SIM_PORT:-8001}
EPP_PORT=${DEMO_EPP_PORT:-9002}
HEALTH_PORT=${DEMO_HEALTH_PORT:-9003}
METRICS_PORT=${DEMO_METRICS_PORT:-9090}
MODEL=${DEMO_MODEL:-meta-llama/Llama-3.1-8B-Instruct}
SERVERS=4
SIM_PORTS=$(seq "$SIM_PORT" $((SIM_PORT + SERVERS - 1)))
case $MODE in
duplex) CONFIG=tests/envoy/configs/full-duplex.yaml ;;
buffered) CONFIG=tests/envoy/configs/buffered.yaml ;;
esac

command -v curl >/dev/null || fail "needs curl (apt-get install curl)"

# A port someone else listens on would answer in place of ours.
for port in "$PORT" "$ADMIN_PORT" "$EPP_PORT" "$HEALTH_PORT" "$METRICS_PORT" $SIM_PORTS; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        fail "port $port is in use; stop what listens there or move the demo (DEMO_*_PORT, see --help)"
    fi
done

# === binaries ===

if [[ -z ${EPP_BIN:-} || -z ${EPP_SIM_BIN:-} ]]; then
    echo "demo: building epp, epp-sim and epp-bench ($PROFILE)..." >&2
    flags=()
    [[ $PROFILE == release ]] && flags=(--release)
    cargo build --quiet "${flags[@]}" --bin epp --bin epp-sim --bin epp-bench ||
        fail "cargo build failed"
fi
BIN_DIR=${CARGO_TARGET_DIR:-target}/$PROFILE
EPP_BIN=${EPP_BIN:-$BIN_DIR/epp}
EPP_SIM_BIN=${EPP_SIM_BIN:-$BIN_DIR/epp-sim}
if [[ -z ${ENVOY_BIN:-} ]]; then
    echo "demo: installing Envoy (.ci/install-envoy)..." >&2
fi
ENVOY=$(.ci/install-envoy) || fail ".ci/install-envoy failed (it needs python3 with venv, and the network once)"

# === processes ===

DIR=${DEMO_DIR:-$(mktemp -d -t epp-demo.XXXXXX)}
mkdir -p "$DIR"
PIDS=()

stop_all() {
    local status=$?
    trap - EXIT INT TERM
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    [[ ${#PIDS[@]} -gt 0 ]] && echo "demo: stopped Envoy, epp and epp-sim (logs in $DIR)" >&2
    exit "$status"
}
trap stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$EPP_SIM_BIN" --servers "$SERVERS" --base-port "$SIM_PORT" --model "$MODEL" >"$DIR/sim.log" 2>&1 &
PIDS+=($!)

endpoints=$(printf '127.0.0.1:%s,' $SIM_PORTS)
# --health-checking answers Envoy's health check on the ext_proc port: without it, Envoy marks
# the EPP unhealthy in full-duplex.yaml (failed_active_hc) and reaches it in panic mode only.
"$EPP_BIN" --endpoints "${endpoints%,}" --config-file plugins-config/default-plugins.yaml \
    --grpc-port "$EPP_PORT" --grpc-health-port "$HEALTH_PORT" --metrics-port "$METRICS_PORT" \
    --secure-serving=false --health-checking --v 4 >"$DIR/epp.log" 2>&1 &
PIDS+=($!)

sed -e "s/{{ADMIN_PORT}}/$ADMIN_PORT/; s/{{LISTEN_PORT}}/$PORT/; s/{{EPP_PORT}}/$EPP_PORT/" \
    "$CONFIG" >"$DIR/envoy.yaml"
"$ENVOY" -c "$DIR/envoy.yaml" --disable-hot-restart --concurrency 1 --log-level warn \
    --file-flush-interval-msec 100 >"$DIR/access.log" 2>"$DIR/envoy.log" &
PIDS+=($!)

# Ready when a request goes all the way: Envoy → EPP → a simulator and back.
deadline=$((SECONDS + 60))
until [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/v1/models") == 200 ]]; do
    for pid in "${PIDS[@]}"; do
        kill -0 "$pid" 2>/dev/null || {
            tail -n 20 "$DIR"/*.log >&2
            fail "a process exited during startup (logs above, all in $DIR)"
        }
    done
    ((SECONDS < deadline)) || {
        tail -n 20 "$DIR"/*.log >&2
        fail "the stack was not ready within 60 s (logs above, all in $DIR)"
    }
    sleep 0.2
done

URL=http://127.0.0.1:$PORT

if $CHECK; then
    echo "demo: $MODE mode is up; a completion through Envoy:" >&2
    headers=$DIR/check.headers
    answer=$(curl -sS -D "$headers" "$URL/v1/completions" -H 'content-type: application/json' \
        -d "{\"model\":\"$MODEL\",\"prompt\":\"Write as if you were a critic: San Francisco\",\"max_tokens\":8}")
    echo "$answer"
    status=$(head -n 1 "$headers" | tr -d '\r')
    served=$(grep -i '^x-sim-server:' "$headers" | tr -d '\r' | cut -d' ' -f2)
    picked=$(grep -i '^x-e2e-epp-metadata:' "$headers" | tr -d '\r' | cut -d' ' -f2)
    [[ $status == *" 200"* ]] || fail "completion: $status"
    [[ $answer == *'"text_completion"'* ]] || fail "completion: not a completion"
    [[ -n $served && $picked == "127.0.0.1:$served" ]] ||
        fail "completion: served by '$served', the EPP picked '$picked'"
    echo "demo: served by simulated server $served, the EPP's pick" >&2
    echo "demo: a streamed chat through Envoy:" >&2
    stream=$(curl -sS -N "$URL/v1/chat/completions" -H 'content-type: application/json' \
        -d "{\"model\":\"$MODEL\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":4,\"stream\":true}")
    echo "$stream"
    [[ $stream == *'data: [DONE]'* ]] || fail "streamed chat: no [DONE]"
    echo "demo: check passed ($MODE)" >&2
    exit 0
fi

cat <<EOF

Envoy ($MODE mode) on $URL -> epp (ext_proc :$EPP_PORT) -> epp-sim servers on ports ${SIM_PORT}-$((SIM_PORT + SERVERS - 1)).
Model "$MODEL". Logs: $DIR/{epp,sim,envoy,access}.log

Try (x-sim-server names the simulated server that answered, x-e2e-epp-metadata the EPP's pick):

  curl -si $URL/v1/completions -H 'content-type: application/json' \\
    -d '{"model":"$MODEL","prompt":"Write as if you were a critic: San Francisco","max_tokens":8}'

  curl -sN $URL/v1/chat/completions -H 'content-type: application/json' \\
    -d '{"model":"$MODEL","messages":[{"role":"user","content":"hi"}],"max_tokens":8,"stream":true,"stream_options":{"include_usage":true}}'

  curl -s $URL/v1/embeddings -H 'content-type: application/json' -d '{"model":"$MODEL","input":"embed me","dimensions":4}'
  curl -s $URL/v1/responses -H 'content-type: application/json' -d '{"model":"$MODEL","input":"hi","max_output_tokens":4}'

  curl -s localhost:$METRICS_PORT/metrics | grep -E '^inference_(model_request_total|extension_picks_total)'
  curl -s localhost:$SIM_PORT/metrics | grep -E '^vllm:num_requests'     # one server's load
  grep 'request scheduled' $DIR/epp.log | tail -3                        # the EPP's picks (--v 4)
  ${BIN_DIR}/epp-bench proxy --url $URL/v1/completions --concurrency 8 --requests 200

$(if [[ $MODE == buffered ]]; then
    echo "Buffered mode: Envoy holds whole bodies, up to 32 KiB (the listener's buffer limit): a larger"
    echo "request gets 413 from Envoy, a larger response 500, and a stream arrives all at once at its end."
    echo
fi)Ctrl-C stops everything.
EOF
wait -n "${PIDS[@]}" || true
fail "a process exited (logs in $DIR)"
