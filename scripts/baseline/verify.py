"""Checks that the Python baseline computes what fitrank computes: same request to both services
(after the load generator's catalog setup), same sessions in the same order, probabilities equal
to 1e-5. Usage: python verify.py FITRANK_ADDR BASELINE_ADDR"""

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import server  # noqa: E402  (generates the stubs)

server.generate_stubs(os.path.abspath(os.path.join(os.path.dirname(__file__), "../../proto")))
import grpc  # noqa: E402
from fitrank.v1 import ranking_pb2, ranking_pb2_grpc  # noqa: E402

worst = 0.0
for user in ("bench-u0", "bench-u1", "bench-u2", "bench-u5"):
    request = ranking_pb2.RankRequest(user_id=user, candidate_session_ids=[f"bench-s{i}" for i in range(500)], limit=20,
                                      context=ranking_pb2.RequestContext(time_unix_ms=1_795_300_000_000))
    answers = [ranking_pb2_grpc.RankingServiceStub(grpc.insecure_channel(a)).Rank(request) for a in sys.argv[1:3]]
    ours, theirs = answers
    # Score sequences must agree position by position (tied sessions may be ordered differently:
    # fitrank breaks ties by session id, numpy by index).
    for a, b in zip(ours.items, theirs.items):
        worst = max(worst, abs(a.score - b.score))
    # And every session both returned has the same probabilities.
    theirs_by_id = {i.session_id: i for i in theirs.items}
    common = [i for i in ours.items if i.session_id in theirs_by_id]
    for a in common:
        b = theirs_by_id[a.session_id]
        worst = max(worst, abs(a.p_purchase - b.p_purchase), abs(a.p_engage - b.p_engage))
        assert a.in_target == b.in_target, f"{a.session_id}: in_target {a.in_target} vs {b.in_target}"
    print(f"{user}: {len(common)} of {len(ours.items)} top sessions in both; top {ours.items[0].session_id} "
          f"p_purchase {ours.items[0].p_purchase:.6f} vs {theirs_by_id.get(ours.items[0].session_id, ours.items[0]).p_purchase:.6f}")
print(f"largest probability difference {worst:.2e}")
assert worst < 1e-5
