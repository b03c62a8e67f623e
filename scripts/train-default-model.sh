#!/usr/bin/env bash
# Reproduces the shipped default model, models/default/20261122-090000, from the built-in
# generator. The weights are deterministic for a given seed and binary; only created_at differs.
# Usage: scripts/train-default-model.sh [MODELS_DIR]   (default: models)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/fitrank/target}"
cargo run --release --quiet -- train --generate --seed 7 --rows 480000 --users 5000 --sessions 600 \
  --alphas 1.0 --validation 0 --test 0.2 --max-iterations 200 --name default --version 20261122-090000 --models "${1:-models}"
