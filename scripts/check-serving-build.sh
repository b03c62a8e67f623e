#!/usr/bin/env bash
# Proves the boundary between the serving product and the lab: the `fitrank` package (what
# `fitrank serve` needs) builds, lints and tests on its own, and its normal dependency tree holds
# none of the lab's or the instruments' libraries. Run by .ci/run; runs alone too.
set -euo pipefail
cd "$(dirname "$0")/.."

# (statrs is the product's too: the experiments' live readouts use the report's statistics.)
forbidden='^(parquet|plotters|plotters-[a-z]+|argmin|argmin-math|linfa|linfa-[a-z]+|ndarray|criterion|csv|indicatif|fitrank-lab|fitrank-bench) v'
tree=$(cargo tree -p fitrank -e normal --prefix none --locked)
if found=$(grep -E "$forbidden" <<<"$tree" | sort -u) && [ -n "$found" ]; then
  echo "the serving build depends on lab or instrument crates:" >&2
  echo "$found" >&2
  exit 1
fi
echo "serving build: $(sort -u <<<"$tree" | wc -l) crates, none of the lab's or the instruments'"

# The product alone: built, linted and tested without the other workspace members.
cargo clippy -p fitrank --all-targets --locked -- -D warnings
cargo build -p fitrank --bins --locked
