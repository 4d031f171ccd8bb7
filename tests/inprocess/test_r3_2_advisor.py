"""R3.2 Trusted Advisor exposed keys.

The emulator answers like an account on the Basic support plan
(SubscriptionRequiredException, custodian_ext_dev/emulator/services.py); a
Business-plan answer with flagged keys, and other errors, use botocore's
Stubber with AWS-shaped responses.
"""
import json
import os

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from custodian_ext.filters import advisor
from tests.support import load_policy, policy_vars, run_policy

ADVISOR = load_policy('detect/r3-2.yml', 'r3-2-trusted-advisor-exposed-keys')


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
