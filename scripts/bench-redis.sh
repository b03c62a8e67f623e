#!/usr/bin/env bash
# Rank p99 on the Redis store next to the embedded store at the same load, Ingest on Redis, rankings
# under write load, and Redis memory per user, per live session and per remembered event id.
#   1. embedded store: closed-loop maximum of Rank (500 candidates), then a fixed rate of half of it;
#   2. Redis store (a redis-server of this script's own, AOF on, appendfsync everysec), same fixed
#      rate, then its own closed-loop maximum, then Ingest's maximum (batches of 1,000 events over
#      2,000 sessions, then over 20);
#   3. under write load: Ingest at half of Redis's maximum while Rank runs at half the fixed rate,
#      then at the fixed rate, on Redis, then on the embedded store (rankings marked degraded, and
#      Rank p99, side by side);
#   4. MEMORY USAGE of the keys ingest created, averaged per kind (see src/store/redis/keys.rs),
#      taken before step 3.
# Usage: scripts/bench-redis.sh [SECONDS]   Output: a markdown table on stdout, logs in $OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN="${1:-10}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/fitrank/target}"
OUT="${OUT:-$(mktemp -d)}"; mkdir -p "$OUT"
scripts/install-redis.sh
cargo build --release --workspace --quiet
B="$CARGO_TARGET_DIR/release/fitrank"
RPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$RPORT" --bind 127.0.0.1 --save "" --appendonly yes --appendfsync everysec \
  --dir "$OUT" --daemonize no > "$OUT/redis.log" 2>&1 &
RS=$!
FR=""
trap 'kill $RS $FR 2>/dev/null || true' EXIT
until redis-cli -p "$RPORT" ping >/dev/null 2>&1; do sleep 0.1; done

source scripts/bench-lib.sh
serve() { # store data-dir
  cat > "$OUT/fitrank.toml" <<TOML
worker_threads = 1
data_dir = "$2"
TOML
  FITRANK_LOG=warn "$B" serve --http-addr 127.0.0.1:0 --config "$OUT/fitrank.toml" --addr 127.0.0.1:50092 --store "$1" > "$OUT/fitrank-$(basename "$2").log" 2>&1 &
  FR=$!
  sleep 2
}
stop() { kill "$FR"; wait "$FR" 2>/dev/null || true; FR=""; }
URL=http://127.0.0.1:50092

serve embedded "$OUT/embedded"
emb_max=$(bench rank --url $URL --concurrency 64 --candidates 500)
RATE=$(python3 -c "print(round($(field "$emb_max" rps) / 2))")
emb_half=$(bench rank --url $URL --rate "$RATE" --candidates 500 --no-setup)
stop

serve "redis://127.0.0.1:$RPORT" "$OUT/redis"
red_half=$(bench rank --url $URL --rate "$RATE" --candidates 500)
red_max=$(bench rank --url $URL --concurrency 64 --candidates 500 --no-setup)
# Redis's own CPU seconds (user + system), read around each Ingest run: events per Redis CPU-second
# is the figure per Redis core, whatever else the machine runs.
rcpu() { redis-cli -p "$RPORT" info cpu | awk -F: '/^used_cpu_(sys|user):/{s+=$2} END{print s}'; }
c0=$(rcpu)
red_ingest=$(bench ingest --url $URL --concurrency 8 --batch 1000 --no-setup)
c1=$(rcpu)
# The same with the events crowded onto 20 live sessions, as on a platform with a few live streams.
red_ingest_live=$(bench ingest --url $URL --concurrency 8 --batch 1000 --no-setup --event-sessions 20)
c2=$(rcpu)
# Memory: average MEMORY USAGE per key kind (key names in src/store/redis/keys.rs), taken after
# Ingest at full rate and before the write-load phase, which overloads this machine: there writes
# time out after Redis applied them, their compactions never run, and blobs grow to their backstop.
memory() {
python3 - "$RPORT" <<'PY'
import subprocess, sys, random
port = sys.argv[1]
cli = lambda *a: subprocess.run(["redis-cli", "-p", port, *a], capture_output=True, text=True).stdout
keys = cli("--scan").split()
kinds = {"user profile": ":p", "user activity": ":act", "session attributes": ":a", "session stats": ":st"}
avg = {}
for name, suffix in kinds.items():
    ks = [k for k in keys if k.endswith(suffix)]
    sample = random.Random(1).sample(ks, min(500, len(ks)))
    avg[name] = sum(int(cli("MEMORY", "USAGE", k, "SAMPLES", "0")) for k in sample) / max(1, len(sample))
# Event ids live in the de-duplication buckets' sets (fr:ev:B on standalone Redis).
buckets = [k for k in keys if k.startswith("fr:ev:")]
ids = sum(int(cli("SCARD", k)) for k in buckets)
id_bytes = sum(int(cli("MEMORY", "USAGE", k, "SAMPLES", "0")) for k in buckets)
live = int(cli("ZCARD", "fr:live")); live_bytes = int(cli("MEMORY", "USAGE", "fr:live", "SAMPLES", "0"))
print("\n| Redis memory (MEMORY USAGE, incl. key) | bytes |\n|---|---|")
print(f"| per user (profile + activity) | {avg['user profile'] + avg['user activity']:.0f} |")
print(f"| per live session (attributes + stats + live index entry) | {avg['session attributes'] + avg['session stats'] + live_bytes / max(1, live):.0f} |")
print(f"| per remembered event id (de-duplication sets: {ids} ids in {len(buckets)} buckets) | {id_bytes / max(1, ids):.0f} |")
print(f"\n({len(keys)} keys; {live} live sessions; used_memory {cli('INFO', 'memory').split('used_memory:')[1].split()[0]} bytes)")
PY
}
memory > "$OUT/memory.md"
IRATE=$(python3 -c "print(round($(field "$red_ingest" rps) / 2, 1))")
# A quarter of the embedded store's Rank maximum: a ranking load this machine sustains beside the
# ingest, the load generators and Redis (at half of it, the two cores saturate).
QRATE=$(python3 -c "print(round($RATE / 2))")
under_load() { # label rank-rate: Ingest at IRATE batches/s in the background, Rank at rank-rate
  bench ingest --url $URL --rate "$IRATE" --batch 1000 --no-setup > "$OUT/ingest-$1.json" &
  local ingest=$!
  bench rank --url $URL --rate "$2" --candidates 500 --no-setup
  wait "$ingest"
}
red_loaded_q=$(under_load redis-quarter "$QRATE")
red_loaded=$(under_load redis "$RATE")
red_loaded_ingest=$(cat "$OUT/ingest-redis.json")
stop
serve embedded "$OUT/embedded-loaded"
"$B" bench rank --url $URL --rate 1 --candidates 500 --duration 0.5 --warmup 0 --json > /dev/null  # the catalog
emb_loaded_q=$(under_load embedded-quarter "$QRATE")
emb_loaded=$(under_load embedded "$RATE")
emb_loaded_ingest=$(cat "$OUT/ingest-embedded.json")
stop
echo "$emb_max $emb_half $red_half $red_max $red_ingest $red_ingest_live $red_loaded $red_loaded_ingest $emb_loaded $emb_loaded_ingest $red_loaded_q $emb_loaded_q" > "$OUT/raw.json"

echo "Machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB; $(date -u +%F); ${SECONDS_PER_RUN}s per run;" \
  "fitrank worker_threads 1; redis-server $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/') on the same machine; logs in $OUT"
echo
echo "| what | mode | req/s | items/s | p50 µs | p99 µs | p99.9 µs | server p99 µs | steal % | stalled % |"
echo "|---|---|---|---|---|---|---|---|---|---|"
row "embedded store: Rank, 500 candidates" "$emb_max"
row "embedded store: Rank, 500 candidates, half of its max" "$emb_half"
row "Redis store: Rank, 500 candidates, same rate" "$red_half"
row "Redis store: Rank, 500 candidates" "$red_max"
row "Redis store: Ingest (events)" "$red_ingest"
row "Redis store: Ingest (events), on 20 live sessions" "$red_ingest_live"
row "Redis store: Rank, same rate, under Ingest at half of its max" "$red_loaded"
row "Redis store: that Ingest (events)" "$red_loaded_ingest"
row "embedded store: Rank, same rate, under the same Ingest" "$emb_loaded"
row "embedded store: that Ingest (events)" "$emb_loaded_ingest"
row "Redis store: Rank at a quarter of the embedded max, under the same Ingest" "$red_loaded_q"
row "Redis store: that Ingest (events)" "$(cat "$OUT/ingest-redis-quarter.json")"
row "embedded store: Rank at a quarter of its max, under the same Ingest" "$emb_loaded_q"
python3 - "$emb_half" "$red_half" "$red_loaded" "$emb_loaded" "$red_loaded_q" "$emb_loaded_q" "$red_ingest" "$red_ingest_live" "$c0" "$c1" "$c2" <<'PY'
import json, sys
e, r, rl, el, rq, eq, ing, live = (json.loads(a) for a in sys.argv[1:9])
c0, c1, c2 = (float(a) for a in sys.argv[9:12])
# Redis's CPU over each whole Ingest run (warm-up included), against the events of its measured window scaled to it.
for label, j, cpu in (("", ing, c1 - c0), (" on 20 live sessions", live, c2 - c1)):
    print(f"\nIngest{label}: Redis busy {cpu:.1f} CPU-s; {j['items_per_second'] / max(1e-9, cpu / (j['seconds'] + 2)):.0f} events per Redis CPU-second")
print(f"\np99 at the same rate ({e['rps']:.0f} req/s): Redis / embedded = {r['p99_us'] / e['p99_us']:.2f}")
for label, red, emb in (("", rl, el), (" at a quarter of the max", rq, eq)):
    print(f"under write load{label}: Redis / embedded p99 = {red['p99_us'] / emb['p99_us']:.2f}; rankings degraded:"
          f" Redis {red['degraded_rankings']} of {red['rankings']} ({100 * red['degraded_rankings'] / max(1, red['rankings']):.2f}%),"
          f" embedded {emb['degraded_rankings']} of {emb['rankings']}")
PY
cat "$OUT/memory.md"
