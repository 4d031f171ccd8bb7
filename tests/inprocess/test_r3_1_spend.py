"""R3.1 spend this month against last month, R3.2 Trusted Advisor exposed keys.

R3.1: moto serves Cost Explorer results injected through its
``/moto-api/static/ce/cost-and-usage-results`` endpoint, one per distinct
request, in order: the filter asks by SERVICE first, then by REGION. "Today"
is fixed in-process so the month arithmetic is known.

R3.2: the emulator answers like an account on the Basic support plan
(SubscriptionRequiredException, custodian_ext_dev/emulator/services.py); a
Business-plan answer with flagged keys, and other errors, use botocore's
Stubber with AWS-shaped responses.
"""
import datetime
import json
import os

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from custodian_ext.filters import advisor, cost
from tests.support import load_policy, policy_vars, run_policy

SPEND = load_policy('detect/r3-1.yml', 'r3-1-spend-new-or-rising')
ADVISOR = load_policy('detect/r3-2.yml', 'r3-2-trusted-advisor-exposed-keys')
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


def test_no_support_plan_is_reported_as_skipped(aws, tmp_path):
    assert run_policy(ADVISOR, policy_vars(), account=aws, output_dir=str(tmp_path)) == []
    [skip] = [os.path.join(d, f) for d, _, fs in os.walk(tmp_path) for f in fs
              if f == 'skipped.json']
    with open(skip) as fh:
        reason = json.load(fh)['reason']
    assert 'SubscriptionRequiredException' in reason and 'support plan' in reason


def _advisor_filter(monkeypatch, client, tmp_path):
    from c7n.config import Config
    from c7n.policy import Policy
    from c7n.resources import load_resources
    load_resources(('aws.account',))
    monkeypatch.setattr(advisor, 'local_session', lambda factory: type(
        'S', (), {'client': staticmethod(lambda *a, **kw: client)})())
    p = Policy(dict(ADVISOR, conditions=[]), Config.empty(
        region='us-east-1', account_id='111122223333', output_dir=str(tmp_path)))
    return p.resource_manager.filters[0]


def _support():
    return boto3.client('support', region_name='us-east-1', aws_access_key_id='x',
                        aws_secret_access_key='y')


def _result(resources):
    return {'result': {'checkId': advisor.CHECK_ID, 'timestamp': '2026-11-28T10:00:00Z',
                       'status': 'error' if resources else 'ok',
                       'resourcesSummary': {'resourcesProcessed': 1,
                                            'resourcesFlagged': len(resources),
                                            'resourcesIgnored': 0, 'resourcesSuppressed': 0},
                       'categorySpecificSummary': {'costOptimizing': {
                           'estimatedMonthlySavings': 0, 'estimatedPercentMonthlySavings': 0}},
                       'flaggedResources': resources}}


def test_flagged_keys_with_a_business_plan(monkeypatch, tmp_path):
    client = _support()
    f = _advisor_filter(monkeypatch, client, tmp_path)
    with Stubber(client) as stub:
        stub.add_response('describe_trusted_advisor_check_result', _result([{
            'status': 'error', 'region': 'us-east-1', 'resourceId': 'abc', 'isSuppressed': False,
            'metadata': ['AKIAEXAMPLEEXPOSED01', 'deploy-bot', 'Exposed', '12345678',
                         '2026-11-28T09:40:00Z', 'https://github.com/x/y', '2026-11-29', '0']}]),
            {'checkId': advisor.CHECK_ID, 'language': 'en'})
        [acct] = f.process([{'account_id': '111122223333'}])
    [key] = acct['c7n:exposed-access-keys']
    assert (key['AccessKeyId'], key['UserName'], key['CaseId']) == \
        ('AKIAEXAMPLEEXPOSED01', 'deploy-bot', '12345678')


def test_no_flagged_keys_and_other_errors(monkeypatch, tmp_path):
    client = _support()
    f = _advisor_filter(monkeypatch, client, tmp_path)
    with Stubber(client) as stub:
        stub.add_response('describe_trusted_advisor_check_result', _result([]))
        stub.add_client_error('describe_trusted_advisor_check_result', 'AccessDeniedException',
                              'not authorized', 400)
        assert f.process([{'account_id': '111122223333'}]) == []
        with pytest.raises(ClientError, match='AccessDenied'):
            f.process([{'account_id': '111122223333'}])
