#!/usr/bin/env bash
# Training speed: fitrank (linfa logistic regression) and scikit-learn (lbfgs) on the same
# generated rows, same split, same L2 strength and iteration cap, in one run.
# Usage: scripts/bench-training.sh [ROWS] [MAX_ITER]      (default 1,000,000 rows, 100 iterations)
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS="${1:-1000000}"; ITERS="${2:-100}"; ALPHA=1; TEST=0.1
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/fitrank/target}"
OUT="${OUT:-$(mktemp -d)}"; mkdir -p "$OUT"
cargo build --release --quiet
python3 -m pip install --quiet -r scripts/baseline/requirements.txt pandas pyarrow >/dev/null 2>&1
B="$CARGO_TARGET_DIR/release/fitrank"
"$B" generate --rows "$ROWS" --users 50000 --sessions 5000 --out "$OUT/rows.parquet"
echo "== fitrank (linfa) =="
"$B" train --data "$OUT/rows.parquet" --alphas "$ALPHA" --validation 0 --test "$TEST" --max-iterations "$ITERS" \
  --models "$OUT/models" --version bench 2>&1 | tee "$OUT/fitrank.log" | grep -E "head|fitted|auc|done"
echo "== scikit-learn (lbfgs) =="
python3 scripts/bench-training.py "$OUT/rows.parquet" "$ALPHA" "$ITERS" "$TEST" | tee "$OUT/sklearn.json"
