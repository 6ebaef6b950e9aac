#!/usr/bin/env bash
# Runs every fuzz target (or the ones named) for SECONDS each and prints executions,
# exec/s and findings. Exits non-zero when a target crashes, times out or runs out of
# memory; the input that did it is in fuzz/artifacts/<target>/.
#
#   fuzz/run.sh [SECONDS] [TARGET...]          (default 60 s each, all targets)
#   FUZZ_RUNS=10000000 fuzz/run.sh 3600 config  (stop at 10 M executions or 1 h)
#   FUZZ_SEED=1 FUZZ_RUNS=100000 FUZZ_CORPUS=/tmp/c fuzz/run.sh 300   (CI: the same inputs
#       every run, from the seeds alone, so a green build stays green)
#
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`). Builds on the stable toolchain
# with `--sanitizer none` (see fuzz/README.md). Corpora grow in fuzz/corpus/<target>/
# (git-ignored), seeded from fuzz/seeds/<target>/ and the test fixtures.
set -euo pipefail
cd "$(dirname "$0")"
FUZZ_DIR=$(pwd)
ROOT=$(cd .. && pwd)

SECONDS_EACH=${1:-60}
shift || true
ALL_TARGETS=(body_parser prometheus config extproc_stream kv_events precise_index)
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=("${ALL_TARGETS[@]}")
RUNS=${FUZZ_RUNS:--1}
SEED=${FUZZ_SEED:-0}   # 0: libFuzzer picks one
CORPUS_ROOT=${FUZZ_CORPUS:-corpus}
TRIPLE=x86_64-unknown-linux-gnu
TARGET_DIR=${FUZZ_TARGET_DIR:-$FUZZ_DIR/target}

command -v cargo-fuzz >/dev/null || { echo "cargo-fuzz is required: cargo install cargo-fuzz --locked"; exit 2; }

# Per-target libFuzzer options: dictionary and the largest input worth trying.
options() {
    case "$1" in
        body_parser) echo "-dict=$FUZZ_DIR/dict/json.dict -max_len=8192" ;;
        prometheus) echo "-dict=$FUZZ_DIR/dict/prometheus.dict -max_len=16384" ;;
        config) echo "-dict=$FUZZ_DIR/dict/config.dict -max_len=4096" ;;
        extproc_stream) echo "-max_len=4096" ;;
        kv_events) echo "-dict=$FUZZ_DIR/dict/kv_events.dict -max_len=8192" ;;
        precise_index) echo "-max_len=4096" ;;
    esac
}

# Fixture files that seed a target besides fuzz/seeds/<target>/.
fixtures() {
    case "$1" in
        prometheus) ls "$ROOT"/tests/fixtures/*.txt ;;
        config) ls "$ROOT"/plugins-config/*.yaml ;;
    esac
}

echo "== build (${TARGETS[*]})"
start=$(date +%s)
for t in "${TARGETS[@]}"; do
    cargo fuzz build --sanitizer none --target-dir "$TARGET_DIR" "$t" >/dev/null
done
echo "built in $(( $(date +%s) - start )) s"

mkdir -p logs
failed=0
summary=()
for t in "${TARGETS[@]}"; do
    corpus=$CORPUS_ROOT/$t
    mkdir -p "$corpus" "artifacts/$t"
    for f in $(fixtures "$t"); do [ -e "$corpus/$(basename "$f")" ] || cp "$f" "$corpus/"; done
    log=logs/$t.log
    echo "== $t: ${SECONDS_EACH}s (runs cap $RUNS)"
    set +e
    # shellcheck disable=SC2046
    seeds=()
    [ -d "seeds/$t" ] && seeds=("seeds/$t")
    "$TARGET_DIR/$TRIPLE/release/$t" "$corpus" "${seeds[@]}" \
        $(options "$t") \
        -max_total_time="$SECONDS_EACH" -runs="$RUNS" -seed="$SEED" \
        -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="artifacts/$t/" >"$log" 2>&1
    rc=$?
    set -e
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
    rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo '?')
    findings=$(ls "artifacts/$t" | wc -l)
    line="$t: rc=$rc executions=$execs exec/s=$rate cov=$cov corpus=$(ls "$corpus" | wc -l) artifacts=$findings"
    echo "$line"
    summary+=("$line")
    if [ "$rc" -ne 0 ]; then
        failed=1
        grep -m1 -A30 "panicked at\|ERROR: libFuzzer\|==ERROR" "$log" || tail -30 "$log"
    fi
done

echo "== summary"
printf '%s\n' "${summary[@]}"
exit "$failed"
