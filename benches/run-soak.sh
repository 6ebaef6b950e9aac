#!/usr/bin/env bash
# Soak: mixed load through a real Envoy and the epp binary over epp-sim servers that come
# and go, with streams cancelled at random (benches/soak/soak.py). Asserts at the end that
# RSS is flat after warm-up, open streams and in-flight counts are back to 0, and no request
# was routed outside the pool; exits 1 otherwise.
#
#   benches/run-soak.sh                          # 20 minutes, the recorded run
#   DURATION=120 WARMUP=40 benches/run-soak.sh   # a quick check
#
# Knobs: DURATION (1200 s), WARMUP (180 s), CONCURRENCY (8), SERVERS (4), CHURN_EVERY (20 s),
# OUT (report folder), SKIP_BUILD=1, BASE_PORT (19400).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benches/results/soak-$(date +%Y%m%d-%H%M%S)}
BIN=${CARGO_TARGET_DIR:-target}/release
if [ "${SKIP_BUILD:-0}" != 1 ]; then
    cargo build --release --bin epp --bin epp-sim >&2
fi
ENVOY=$(.ci/install-envoy)
exec python3 benches/soak/soak.py --bin "$BIN" --envoy "$ENVOY" --out "$OUT" \
    --duration "${DURATION:-1200}" --warmup "${WARMUP:-180}" --concurrency "${CONCURRENCY:-8}" \
    --servers "${SERVERS:-4}" --churn-every "${CHURN_EVERY:-20}" --base-port "${BASE_PORT:-19400}"
