#!/usr/bin/env bash
# Training speed: fitrank (its sparse solver, then linfa-logistic) and scikit-learn (lbfgs) on the
# same generated rows, same split, same L2 strength and iteration cap, in one run.
# Usage: scripts/bench-training.sh [ROWS] [MAX_ITER]      (default 1,000,000 rows, 100 iterations)
# SOLVERS="sparse" skips the slow linfa reference.
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS="${1:-1000000}"; ITERS="${2:-100}"; ALPHA=1; TEST=0.1
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/fitrank/target}"
OUT="${OUT:-$(mktemp -d)}"; mkdir -p "$OUT"
cargo build --release --workspace --quiet
python3 -m pip install --quiet -r scripts/baseline/requirements.txt pandas pyarrow >/dev/null 2>&1
B="$CARGO_TARGET_DIR/release/fitrank"
"$B" generate --rows "$ROWS" --users 50000 --sessions 5000 --out "$OUT/rows.parquet"
for SOLVER in ${SOLVERS:-sparse linfa}; do
  echo "== fitrank (--solver $SOLVER) =="
  "$B" train --data "$OUT/rows.parquet" --alphas "$ALPHA" --validation 0 --test "$TEST" --max-iterations "$ITERS" \
    --solver "$SOLVER" --models "$OUT/models" --version "bench-$SOLVER" 2>&1 | tee "$OUT/fitrank-$SOLVER.log" \
    | grep -E "head|fitted|auc|logloss|done"
done
echo "== scikit-learn (lbfgs) =="
python3 scripts/bench-training.py "$OUT/rows.parquet" "$ALPHA" "$ITERS" "$TEST" | tee "$OUT/sklearn.json"
