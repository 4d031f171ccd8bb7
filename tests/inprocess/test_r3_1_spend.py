"""R3.1 spend this month against last month.

moto serves Cost Explorer results injected through its
``/moto-api/static/ce/cost-and-usage-results`` endpoint, one per distinct
request, in order: the filter asks by SERVICE first, then by REGION. "Today"
is fixed in-process so the month arithmetic is known.
"""
import datetime

import pytest

from custodian_ext.filters import cost
from tests.support import load_policy, policy_vars, run_policy

SPEND = load_policy('detect/r3-1.yml', 'r3-1-spend-new-or-rising')
TODAY = datetime.date(2026, 11, 16)  # 15 full days into a 30-day month; October had 31


def _results(groups_by_period):
    return {'ResultsByTime': [
        {'TimePeriod': {'Start': start, 'End': end}, 'Total': {},
         'Estimated': start == '2026-11-01',
         'Groups': [{'Keys': [k], 'Metrics': {'UnblendedCost': {'Amount': str(v), 'Unit': 'USD'}}}
                    for k, v in groups.items()]}
        for (start, end), groups in groups_by_period.items()], 'DimensionValueAttributes': []}


def inject(emulator, account_id, by_service, by_region):
    """Queue the two answers: (last month, this month) amounts per key."""
    results = []
    for table in (by_service, by_region):
        results.append(_results({
            ('2026-10-01', '2026-11-01'): {k: v[0] for k, v in table.items() if v[0]},
            ('2026-11-01', '2026-11-16'): {k: v[1] for k, v in table.items() if v[1]}}))
    emulator.post('/moto-api/static/ce/cost-and-usage-results',
                  {'account_id': account_id, 'results': results})


@pytest.fixture
def today(monkeypatch):
    monkeypatch.setattr(cost.CostChanges, 'today', lambda self: TODAY)


def test_new_service_new_region_and_spike(aws, emulator, today, tmp_path):
    inject(emulator, aws.id,
           by_service={'Amazon Elastic Compute Cloud - Compute': (310.0, 900.0),  # x6
                       'Amazon SageMaker': (0, 42.0),                              # new
                       'Amazon Simple Storage Service': (62.0, 31.0),              # steady
                       'AWS Lambda': (0, 3.0)},                                    # new, small
           by_region={'us-east-1': (372.0, 200.0), 'eu-north-1': (0, 773.0)})
    [acct] = run_policy(SPEND, policy_vars(cost_increase_ratio=1.5, cost_min_amount=10),
                        account=aws, output_dir=str(tmp_path))
    changes = {(c['Dimension'], c['Key']): c for c in acct['c7n:cost-changes']}
    assert set(changes) == {('SERVICE', 'Amazon Elastic Compute Cloud - Compute'),
                            ('SERVICE', 'Amazon SageMaker'), ('REGION', 'eu-north-1')}
    ec2 = changes[('SERVICE', 'Amazon Elastic Compute Cloud - Compute')]
    assert ec2['Change'] == 'increase' and ec2['LastMonthProRated'] == 150.0  # 310 * 15/31
    assert ec2['Ratio'] == 6.0
    assert changes[('SERVICE', 'Amazon SageMaker')]['Change'] == 'new'


def test_steady_spend_is_clean(aws, emulator, today, monkeypatch, tmp_path):
    inject(emulator, aws.id,
           by_service={'Amazon Elastic Compute Cloud - Compute': (310.0, 160.0),
                       'AWS Lambda': (0, 3.0)},
           by_region={'us-east-1': (310.0, 163.0)})
    assert run_policy(SPEND, policy_vars(), account=aws, output_dir=str(tmp_path)) == []
    # on the first of a month there is no full day to compare yet
    monkeypatch.setattr(cost.CostChanges, 'today', lambda self: datetime.date(2026, 12, 1))
    assert run_policy(SPEND, policy_vars(), account=aws, output_dir=str(tmp_path)) == []
