"""bench/walltime.py's floor of rate-limited calls is a lower bound: no order beats it."""
import itertools

from hypothesis import given, strategies as st

from bench.walltime import lookup_rate, paced_floor


def makespan(latencies, rate):
    """When the last of these requests, sent in this order as soon as "no more than
    ``rate`` in any one second" allows, has answered."""
    return max(k // rate + lat for k, lat in enumerate(latencies))


@given(st.lists(st.floats(min_value=0.0, max_value=10.0), min_size=1, max_size=6))
def test_no_order_of_the_requests_ends_before_the_floor(latencies):
    best = min(makespan(p, 2) for p in itertools.permutations(latencies))
    assert abs(paced_floor(latencies, 2.0) - best) < 1e-9


def test_a_slow_request_is_not_added_to_the_pacing():
    """35 requests at 2/s: the last pair goes 17 s in; the 7.6 s one sent first ends
    within that."""
    assert paced_floor([7.6] + [0.1] * 34, 2.0) == 17.1
    assert paced_floor([0.2, 0.2], 2.0) == 0.2
    assert paced_floor([0.2, 0.2, 0.2], 2.0) == 1.2


def test_the_floors_schedule_keeps_the_documented_rate():
    """Sent at the floor's slots, no one-second window holds more than two (lookup_rate,
    the benchmark's own count of what AWS allows); a bucket of two refilled at two a
    second would have let three through in the first second."""
    def sent(ts):
        return [{'service': 'cloudtrail', 'operation': 'LookupEvents', 'status': 'ok',
                 'account': '1', 'region': 'us-east-1', 't': t} for t in ts]
    assert lookup_rate(sent([k // 2 for k in range(9)])) == 2
    assert lookup_rate(sent([0, 0] + [(k - 1) / 2 for k in range(2, 9)])) == 3


def test_an_account_region_on_kept_connections_pays_no_handshake():
    """A c7n-org worker keeps its endpoints' connections between account-regions: an
    account-region that opened none is not charged the two round trips of one."""
    from bench.walltime import floor

    def call(region, new):
        return {'service': 'ec2', 'operation': 'DescribeVpcs', 'status': 'ok',
                'account': '1', 'region': region, 'latency_ms': 100.0 + (200.0 if new else 0),
                'handshake_ms': 200.0 if new else 0.0, 'rtt_ms': 100.0,
                'continuation': False, 'new_connection': new}
    ars = floor([call('eu-west-1', True), call('eu-west-2', False)], assumed=False,
                rules={})['ars']
    assert round(ars[('1', 'eu-west-1')], 9) == 0.3 and round(ars[('1', 'eu-west-2')], 9) == 0.1
