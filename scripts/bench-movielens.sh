#!/usr/bin/env bash
# The MovieLens 100k benchmark as docs/PERFORMANCE.md records it: seeds 1-4, full and demographic
# feature sets, per-seed JSON lines and the mean test AUC and log loss of each feature set.
# Usage: scripts/bench-movielens.sh [DATA_DIR [EXTRA ARGS...]]   (default ../shared/data/ml-100k;
# never copy the data into this repository: see its README for the licence). EXTRA ARGS go to every
# run, e.g. `--factor-dims 0` for the model without the user x movie factors, `--identity-buckets 0`
# for the features without the user and movie ids (and so without factors).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${1:-../shared/data/ml-100k}"
shift || true
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/fitrank/target}"
cargo build --release --workspace --quiet
B="$CARGO_TARGET_DIR/release/fitrank"
for features in full demographic; do
  for seed in 1 2 3 4; do
    "$B" movielens --data "$DATA" --seed "$seed" --features "$features" --json "$@"
  done
done | tee /dev/stderr | python3 -c '
import json, sys
runs = [json.loads(line) for line in sys.stdin]
for f in ("full", "demographic"):
    rs = [r for r in runs if r["features"] == f]
    auc = sum(r["auc"] for r in rs) / len(rs)
    logloss = sum(r["logloss"] for r in rs) / len(rs)
    print("%-12s identity buckets %d, factor dimensions %d, factor draws %d, mean of %d seeds: AUC %.4f, log loss %.4f"
          % (f, rs[0]["identity_buckets"], rs[0]["factor_dims"], rs[0]["factor_samples"], len(rs), auc, logloss))
'
