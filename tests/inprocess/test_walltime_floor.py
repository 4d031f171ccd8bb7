"""bench/walltime.py's floor of rate-limited calls is a lower bound: no order beats it."""
import itertools

from hypothesis import given, strategies as st

from bench.walltime import paced_floor


def makespan(latencies, rate, burst):
    """When the last of these requests, sent in this order as soon as the token bucket
    allows, has answered."""
    return max(max(0, k - burst + 1) / rate + lat for k, lat in enumerate(latencies))


@given(st.lists(st.floats(min_value=0.0, max_value=10.0), min_size=1, max_size=6))
def test_no_order_of_the_requests_ends_before_the_floor(latencies):
    best = min(makespan(p, 2.0, 2) for p in itertools.permutations(latencies))
    assert abs(paced_floor(latencies, 2.0, 2) - best) < 1e-9


def test_a_slow_request_is_not_added_to_the_pacing():
    """35 requests at 2/s: 16.5 s of pacing; the 7.6 s one sent first ends within it."""
    assert paced_floor([7.6] + [0.1] * 34, 2.0, 2) == 16.6
    assert paced_floor([0.2, 0.2], 2.0, 2) == 0.2
