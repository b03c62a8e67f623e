#!/usr/bin/env bash
# Ingest on Redis Cluster with 1 and 3 primaries (all on this machine), beside standalone Redis in
# the same run: batches of 1,000 events over 2,000 sessions and 1,000 users, 8 in flight, and the
# Redis CPU each node spent (the work spreads across the nodes by hash tag).
# Then `Rank` with 500 candidates at RANK_RATE (default 400/s) on the same replica, beside no
# ingest: its p99, the rankings degraded (a read late or failed), the replica's CPU per ranking
# (its warm-up of 2 s at the same rate included).
# FITRANK=BINARY measures another build of fitrank.
# Usage: [RANK_RATE=N] [FITRANK=BINARY] scripts/bench-redis-cluster.sh [SECONDS]   Output: a markdown table; logs in $OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN="${1:-10}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/fitrank/target}"
OUT="${OUT:-$(mktemp -d)}"; mkdir -p "$OUT"
scripts/install-redis.sh
cargo build --release --workspace --quiet
B="${FITRANK:-$CARGO_TARGET_DIR/release/fitrank}"
source scripts/bench-lib.sh
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null || true' EXIT
redis() { # port dir [extra args]: a redis-server like bench-redis.sh's (AOF everysec)
  mkdir -p "$2"
  redis-server --port "$1" --bind 127.0.0.1 --save "" --appendonly yes --appendfsync everysec --dir "$2" \
    --daemonize no "${@:3}" > "$2/redis.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 100); do redis-cli -p "$1" ping >/dev/null 2>&1 && return; sleep 0.1; done
  echo "redis-server on port $1 did not start; see $2/redis.log" >&2; exit 1
}
# The replica's CPU seconds so far (user + system, from /proc).
pcpu() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$1/stat"; }
cpu() { redis-cli -p "$1" info cpu | awk -F: '/^used_cpu_(user|sys):/{s+=$2} END{printf "%.2f", s}'; }
run() { # name store ports...
  local name=$1 store=$2; shift 2
  printf 'worker_threads = 1\ndata_dir = "%s"\n' "$OUT/$name" > "$OUT/$name.toml"
  FITRANK_LOG=warn "$B" serve --http-addr 127.0.0.1:0 --config "$OUT/$name.toml" --addr 127.0.0.1:50096 \
    --store "$store" > "$OUT/fitrank-$name.log" 2>&1 &
  local fr=$!
  for _ in $(seq 50); do (echo > /dev/tcp/127.0.0.1/50096) 2>/dev/null && break; sleep 0.2; done
  local before=() after=() p
  for p in "$@"; do before+=("$(cpu "$p")"); done
  local r0; r0=$(pcpu "$fr")
  local r; r=$(bench ingest --url http://127.0.0.1:50096 --concurrency 8 --batch 1000)
  for p in "$@"; do after+=("$(cpu "$p")"); done
  local replica; replica=$(python3 -c "print(f'{$(pcpu "$fr") - $r0:.1f}')")
  local k0; k0=$(pcpu "$fr")
  local k; k=$(bench rank --url http://127.0.0.1:50096 --rate "${RANK_RATE:-400}" --candidates 500 --no-setup)
  local per_rank; per_rank=$(python3 -c "import json,sys; j=json.loads(sys.argv[1]); print(f'{1e6 * ($(pcpu "$fr") - $k0) / max(1, j[\"rps\"] * (j[\"seconds\"] + 2)):.0f}')" "$k")
  kill "$fr"; wait "$fr" 2>/dev/null || true
  local spent=""; for i in "${!before[@]}"; do spent+="$(python3 -c "print(f'{${after[$i]} - ${before[$i]}:.1f}')") "; done
  printf '| %s | %.0f | %s | %s | %s | %s | %s | %s |\n' "$name" "$(field "$r" items_per_second)" "$(field "$r" p99_us)" \
    "$spent" "$replica" "$(field "$k" p99_us)" "$(field "$k" degraded_rankings)/$(field "$k" rankings)" "$per_rank"
}
S=$(cluster_port); redis "$S" "$OUT/standalone"
C1=$(cluster_port); redis "$C1" "$OUT/c1" --cluster-enabled yes
redis-cli -p "$C1" cluster addslotsrange 0 16383 > /dev/null
C3=(); for i in 1 2 3; do p=$(cluster_port); redis "$p" "$OUT/c3-$i" --cluster-enabled yes; C3+=("$p"); done
redis-cli --cluster create $(printf '127.0.0.1:%s ' "${C3[@]}") --cluster-replicas 0 --cluster-yes > "$OUT/create.log"
for p in "$C1" "${C3[@]}"; do
  until redis-cli -p "$p" cluster info | grep -q cluster_state:ok; do sleep 0.1; done
done
echo "Machine: $(nproc) cores; $(date -u +%F); ${SECONDS_PER_RUN}s per run; fitrank worker_threads 1; all on this machine; logs in $OUT"
echo
echo "| store | events/s | p99 µs | Redis CPU s per node over the run | replica CPU s | Rank p99 µs | degraded / rankings | replica CPU µs per ranking |"
echo "|---|---|---|---|---|---|---|---|"
run standalone "redis://127.0.0.1:$S" "$S"
run cluster-1 "redis+cluster://127.0.0.1:$C1" "$C1"
run cluster-3 "redis+cluster://$(printf '127.0.0.1:%s,' "${C3[@]}" | sed 's/,$//')" "${C3[@]}"
