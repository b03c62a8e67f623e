# Shared by the gRPC benchmark scripts (sourced): run `fitrank bench` with the script's duration,
# read a field of its JSON, and print one markdown table row (these need $B and
# $SECONDS_PER_RUN); pick a port for a Redis Cluster node.
bench() { "$B" bench "$@" --duration "$SECONDS_PER_RUN" --warmup 2 --json; }
field() { python3 -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$1" "$2"; }
# "server p99 µs": the server's own time inside Rank (where it reports it, else "–");
# "steal %": CPU time the hypervisor took from this VM during the run; "stalled %": the share of
# the run a thread sleeping 1 ms at a time spent in wake-ups more than 1 ms late.
sub() { python3 -c "import json,sys; v=(json.loads(sys.argv[1]).get(sys.argv[2]) or {}).get(sys.argv[3]); print('–' if v is None else (f'{v:.1f}' if isinstance(v, float) else v))" "$1" "$2" "$3"; }
row() { # name json
  printf '| %s | %s | %.0f | %.0f | %s | %s | %s | %s | %s | %s |\n' "$1" "$(field "$2" mode)" "$(field "$2" rps)" \
    "$(field "$2" items_per_second)" "$(field "$2" p50_us)" "$(field "$2" p99_us)" "$(field "$2" p999_us)" \
    "$(sub "$2" server p99_us)" "$(sub "$2" host steal_pct)" "$(sub "$2" hiccups stalled_pct)"
}
# A free port whose Redis Cluster bus port (+10000) is free too.
cluster_port() {
  python3 -c '
import random, socket
def free(p):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", p))
            return True
        except OSError:
            return False
while True:
    p = random.randint(20000, 40000)
    if free(p) and free(p + 10000):
        print(p)
        break
'
}
