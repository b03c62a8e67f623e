#!/usr/bin/env bash
# Side-by-side gRPC benchmark on this machine (client and servers on loopback):
#   the floor (empty unary call), fitrank Rank with 500 candidates (closed loop for the maximum,
#   fixed rate at half of it for p99, and the empty call at that same rate), fitrank Ingest, and
#   the Python baseline (grpcio + scikit-learn on the same features) measured by the same load
#   generator. Each row also shows the server's own p99 inside Rank, the CPU time the hypervisor
#   stole, and how much of the run a sleeping thread found the machine stalled (fitrank bench).
#   Then the machine alone (fitrank bench stalls): threads busy for the CPU share of the
#   half-of-max run, spread over the CPUs and then on one CPU, and how often the machine stopped
#   them while they ran.
# Usage: [WORKER_THREADS=1|2] [MAX_CONCURRENCY=64] scripts/bench-grpc.sh [SECONDS]
# Output: a markdown table on stdout, logs in $OUT. The maximum of each service is measured in
# closed loop with MAX_CONCURRENCY requests in flight; "half of max" is a fixed rate of half that.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN="${1:-10}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/fitrank/target}"
OUT="${OUT:-$(mktemp -d)}"; mkdir -p "$OUT"
cargo build --release --workspace --quiet
B="$CARGO_TARGET_DIR/release/fitrank"
python3 -m pip install --quiet -r scripts/baseline/requirements.txt >/dev/null 2>&1 || python3 -m pip install -r scripts/baseline/requirements.txt
MODEL="models/default/$(ls models/default | sort | tail -1)"

# fitrank: one request thread, since the load generator uses the other core of this 2-core machine
cat > "$OUT/fitrank.toml" <<TOML
worker_threads = ${WORKER_THREADS:-1}
data_dir = "$OUT/data"
TOML
FITRANK_LOG=warn "$B" serve --http-addr 127.0.0.1:0 --config "$OUT/fitrank.toml" --addr 127.0.0.1:50090 > "$OUT/fitrank.log" 2>&1 &
FR=$!
python3 scripts/baseline/server.py --port 50091 --model "$MODEL" > "$OUT/baseline.log" 2>&1 &
PY=$!
trap 'kill $FR $PY 2>/dev/null || true' EXIT
sleep 3

source scripts/bench-lib.sh

floor=$(bench floor --url http://127.0.0.1:50090 --concurrency 32)
MAXC="${MAX_CONCURRENCY:-64}"
fr_max=$(bench rank --url http://127.0.0.1:50090 --concurrency "$MAXC" --candidates 500)
fr_half_rate=$(python3 -c "print(round($(field "$fr_max" rps) / 2))")
fr_half=$(bench rank --url http://127.0.0.1:50090 --rate "$fr_half_rate" --candidates 500 --no-setup)
# the floor at that same rate: the transport's and the machine's own tail at this load
floor_half=$(bench floor --url http://127.0.0.1:50090 --rate "$fr_half_rate")
# the machine alone, no service: threads busy for the CPU share the half-of-max run used, spread
# over all CPUs as that run was, then the same busy time (at most one CPU's) as one thread on one
# CPU (fitrank-bench's stalls probe)
cpus=$(nproc)
duty=$(python3 -c "import json,sys; b=(json.loads(sys.argv[1]).get('host') or {}).get('busy_pct', 50); print(round(min(1.0, max(0.05, b / 100)), 3))" "$fr_half")
duty_one=$(python3 -c "print(round(min(1.0, $duty * $cpus), 3))")
stalls_all=$(bench stalls --probe-threads "$cpus" --duty "$duty")
stalls_one=$(taskset -c 0 "$B" bench stalls --probe-threads 1 --duty "$duty_one" --duration "$SECONDS_PER_RUN" --json)
py_setup=$("$B" bench rank --url http://127.0.0.1:50091 --duration 1 --warmup 0 --concurrency 1 --candidates 500 --json)
python3 scripts/baseline/verify.py 127.0.0.1:50090 127.0.0.1:50091 > "$OUT/verify.log"
py_max=$(bench rank --url http://127.0.0.1:50091 --concurrency "$MAXC" --candidates 500 --no-setup)
py_half_rate=$(python3 -c "print(max(1, round($(field "$py_max" rps) / 2)))")
py_half=$(bench rank --url http://127.0.0.1:50091 --rate "$py_half_rate" --candidates 500 --no-setup)
ingest=$(bench ingest --url http://127.0.0.1:50090 --concurrency 8 --batch 1000)
echo "$floor $fr_max $fr_half $floor_half $py_max $py_half $ingest $py_setup $stalls_all $stalls_one" > "$OUT/raw.json"

echo "Machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB; $(date -u +%F); ${SECONDS_PER_RUN}s per run;" \
  "fitrank worker_threads ${WORKER_THREADS:-1}; max measured with $MAXC in flight; logs in $OUT"
echo
echo "| what | mode | req/s | items/s | p50 µs | p99 µs | p99.9 µs | server p99 µs | steal % | stalled % |"
echo "|---|---|---|---|---|---|---|---|---|---|"
row "floor: empty unary call (health check)" "$floor"
row "fitrank Rank, 500 candidates" "$fr_max"
row "fitrank Rank, 500 candidates, half of max" "$fr_half"
row "floor at the same rate" "$floor_half"
row "Python baseline Rank, 500 candidates" "$py_max"
row "Python baseline Rank, 500 candidates, half of max" "$py_half"
row "fitrank Ingest, batches of 1,000 events" "$ingest"
echo
python3 - "$fr_max" "$py_max" "$fr_half" "$py_half" "$floor_half" "$stalls_all" "$stalls_one" <<'PY'
import json, sys
fr, py, frh, pyh, flh, sa, so = (json.loads(a) for a in sys.argv[1:])
print(f"fitrank / baseline maximum throughput: {fr['rps'] / py['rps']:.1f}x, "
      f"at p99 {fr['p99_us']} µs (fitrank) vs {py['p99_us']} µs (baseline); "
      f"p99 at half of each one's max: fitrank {frh['p99_us']} µs, baseline {pyh['p99_us']} µs")
srv, host = frh.get("server") or {}, frh.get("host") or {}
if srv:
    print(f"fitrank at half of max, inside the Rank handler: p50 {srv['p50_us']} µs, p99 {srv['p99_us']} µs, "
          f"p99.9 {srv['p999_us']} µs over {srv['count']} rankings; the machine's CPUs were "
          f"{host.get('busy_pct', float('nan')):.1f}% busy and {host.get('steal_pct', float('nan')):.1f}% stolen")
cw = frh.get("client")
if cw:
    print(f"the load generator's own threads during that run: {cw['ran_ms']:.0f} ms on a CPU, "
          f"{cw['waited_ms']:.0f} ms waiting for one over {cw['runs']} runs")
print(f"the empty call at the same rate: p99 {flh['p99_us']} µs; a sleeping thread's wake-ups during the Rank run: "
      f"p99 {frh['hiccups']['p99_us']} µs late, {frh['hiccups']['stalled_pct']:.2f}% of the time stalled > 1 ms")
for name, s in (("spread over all CPUs", sa), ("all on one CPU", so)):
    print(f"the machine alone, {s['threads']} threads busy {100 * s['duty']:.0f}% of each ms for {s['seconds']:.0f}s, {name}: "
          f"{s['stalls']} stalls of a running thread > 1 ms ({s['stalls_over_5ms']} > 5 ms), "
          f"{s['stalled_pct']:.2f}% of {s['busy_seconds']:.1f} busy seconds lost, longest {s['max_us']} µs")
PY
echo
sed 's/^/    /' "$OUT/verify.log"
