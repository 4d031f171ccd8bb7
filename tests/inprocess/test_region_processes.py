"""custodian_ext.region_processes: how a custodian run's regions are shared out, and its
setting. The forked run itself is tested through the real ``custodian`` in
tests/cli/test_region_processes.py."""
import pytest

import custodian_ext.region_processes as region_processes
from custodian_ext.errors import PackError


def test_the_heaviest_region_first_each_to_the_lightest_share():
    # the detect pack in 17 regions: the global-events region runs the global checks too
    weights = {'us-east-1': 90, 'ap-south-1': 53, 'eu-north-1': 53, 'eu-west-3': 53,
               'eu-west-2': 53, 'eu-west-1': 53}
    assert region_processes.shares(weights, 2) == [
        ['us-east-1', 'eu-west-3', 'eu-west-1'],      # 90 + 53 + 53
        ['ap-south-1', 'eu-north-1', 'eu-west-2']]    # 53 x 3
    assert region_processes.shares(weights, 3) == [
        ['us-east-1', 'eu-west-1'], ['ap-south-1', 'eu-west-3'], ['eu-north-1', 'eu-west-2']]


def test_more_processes_than_regions_is_one_region_each_and_one_is_all():
    weights = {'us-east-1': 5, 'us-west-2': 7}
    assert region_processes.shares(weights, 4) == [['us-west-2'], ['us-east-1']]
    assert region_processes.shares(weights, 1) == [['us-east-1', 'us-west-2']]


def test_shares_cover_every_region_once_in_the_runs_order():
    weights = {f'r{i}': (i * 7) % 5 + 1 for i in range(17)}
    for n in range(1, 9):
        shares = region_processes.shares(weights, n)
        flat = [r for share in shares for r in share]
        assert sorted(flat) == sorted(weights) and len(flat) == len(weights)
        order = list(weights)
        assert all(share == sorted(share, key=order.index) for share in shares)
        loads = [sum(weights[r] for r in share) for share in shares]
        # no share exceeds the lightest by more than the heaviest region (greedy bound)
        assert max(loads) - min(loads) <= max(weights.values())


@pytest.mark.parametrize('value,expected', [('1', 1), ('3', 3), (' 64 ', 64)])
def test_the_setting(value, expected):
    assert region_processes.processes({region_processes.ENV: value}) == expected


def test_the_default_is_the_cores_at_most_four():
    assert region_processes.processes({}) == max(1, min(region_processes.cores(), 4))


@pytest.mark.parametrize('value', ['0', '65', 'two', '-1', '1.5'])
def test_a_bad_setting_is_one_line_saying_what_to_give(value):
    with pytest.raises(PackError) as e:
        region_processes.processes({region_processes.ENV: value})
    message = str(e.value)
    assert '\n' not in message
    assert f"CUSTODIAN_EXT_PROCESSES={value!r}" in message and '1 (one process) to 64' in message


def test_no_fork_outside_the_custodian_console_script():
    class P:
        def __init__(self, region):
            self.options = type('O', (), {'region': region})()
    policies = [P('us-east-1'), P('us-west-2')]
    mine, others = region_processes.fork(policies, run_share=None)
    assert mine is policies and others == {}
