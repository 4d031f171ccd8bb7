"""custodian_ext.report.securityhub in-process: the rate limiter, the ASFF mapping, the
Lambda output path of an event-driven (react) function, the execution role statement.

The import itself, through the real command, is in tests/cli/test_report_securityhub.py.
"""
import datetime
import os

import pytest

from custodian_ext import periodic, react, settings
from custodian_ext.report import document, securityhub
from custodian_ext.report.loader import load_runs
from tests.support import POLICIES, REPO, policy_vars, reset_sessions

FIXTURE = os.path.join(REPO, 'tests', 'data', 'report', 'org')
NOW = datetime.datetime(2026, 11, 28, 15, 0, 0, tzinfo=datetime.timezone.utc)


class FakeClock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t

    def sleep(self, seconds):
        self.t += seconds


@pytest.mark.parametrize('operation,rate,burst', [('BatchImportFindings', 10, 30),
                                                  ('BatchUpdateFindings', 10, 30),
                                                  ('GetFindings', 3, 6)])
def test_rate_limiter_holds_security_hubs_documented_rates(operation, rate, burst):
    clock = FakeClock()
    limiter = securityhub.RateLimiter(clock=clock, sleep=clock.sleep)
    for _ in range(burst):
        limiter.acquire(('111111111111', 'us-east-1'), operation)
    assert clock.t == 0  # the burst goes at once
    for _ in range(rate * 10):
        limiter.acquire(('111111111111', 'us-east-1'), operation)
    assert clock.t == pytest.approx(10.0)  # then `rate` per second
    # each account and region has its own limits
    before = clock.t
    limiter.acquire(('222222222222', 'us-east-1'), operation)
    assert clock.t == before


def test_asff_of_each_finding_is_complete_and_within_limits():
    doc = document.build(load_runs([FIXTURE]), now=NOW)
    now = securityhub.iso_ms(NOW)
    for f in doc['findings']:
        a = securityhub.asff(f, f['account_id'], f['region'], now)
        for key in ('SchemaVersion', 'Id', 'ProductArn', 'GeneratorId', 'AwsAccountId',
                    'Types', 'CreatedAt', 'UpdatedAt', 'Severity', 'Title', 'Description',
                    'Resources'):
            assert a[key], key
        assert len(a['Title']) <= 256 and len(a['Description']) <= 1024
        assert len(a['ProductFields']) <= 50
        assert a['Id'] == securityhub.finding_id(f)
        assert a['GeneratorId'] == 'custodian-ext/' + f['policy']
        assert a['Severity']['Label'] == securityhub.LABELS[f['severity']]
    # stable ids: the same finding on another day has the same id, another resource not
    f1, f2 = doc['findings'][0], doc['findings'][1]
    assert securityhub.finding_id(f1) == securityhub.finding_id(dict(f1, why=['changed']))
    assert securityhub.finding_id(f1) != securityhub.finding_id(f2)
    # created at kept from the finding already in Security Hub
    a = securityhub.asff(f1, f1['account_id'], f1['region'], now,
                         {'CreatedAt': '2026-01-01T00:00:00.000Z'})
    assert a['CreatedAt'] == '2026-01-01T00:00:00.000Z' and a['UpdatedAt'] == now


def test_only_runs_that_finished_can_resolve():
    doc = document.build(load_runs([FIXTURE]), now=NOW)
    scopes = securityhub.clean_scopes(doc)
    assert ('x6-lightsail-instances', '111111111111', 'eu-north-1') not in scopes  # errored
    assert ('x2-root-access-keys', '111111111111', 'eu-north-1') not in scopes  # skipped
    assert ('x6-stopped-instances', '111111111111', 'eu-north-1') in scopes
    assert not [s for s in scopes if s[0].startswith('x7-')]  # respond runs never resolve


def test_react_function_imports_without_resolving(aws, monkeypatch):
    """An event-driven function's run is about one notice: it never resolves others."""
    import custodian_ext  # noqa: F401
    from c7n.config import Config
    from c7n.policy import Policy
    from c7n.resources import load_resources
    import yaml
    aws.client('securityhub').enable_security_hub()
    with open(os.path.join(POLICIES, 'react', 'x1.yml')) as fh:
        data = yaml.safe_load(fh)['policies'][0]
    values = policy_vars(securityhub_export=True, notify_transport={
        'type': 'sns', 'topic': 'arn:aws:sns:us-east-1:123456789012:t'})
    load_resources((data['resource'],))
    reset_sessions()
    policy = Policy(settings.substitute(data, values),
                    Config.empty(region='us-east-1', account_id=aws.id, output_dir=''))
    assert securityhub.wants_export(policy)
    user = {'UserName': 'leaky', 'Arn': f'arn:aws:iam::{aws.id}:user/leaky'}
    securityhub.export_lambda_runs([(policy, [user])])
    hub = aws.client('securityhub')
    [f] = hub.get_findings()['Findings']
    assert f['GeneratorId'] == 'custodian-ext/x1-react-health-exposed-key'
    # the next notice is about another user: the first finding stays active
    securityhub.export_lambda_runs([(policy, [dict(user, UserName='other',
                                                   Arn=f'arn:aws:iam::{aws.id}:user/other')])])
    states = sorted((f['Resources'][0]['Id'].rsplit('/', 1)[1], f['RecordState'])
                    for f in hub.get_findings()['Findings'])
    assert states == [('leaky', 'ACTIVE'), ('other', 'ACTIVE')]
    # a run its conditions skipped exports nothing
    policy._ext_skip_recorded = True
    securityhub.export_lambda_runs([(policy, [])])
    assert len(hub.get_findings()['Findings']) == 2


def test_the_setting_off_or_unsubstituted_exports_nothing():
    from c7n.config import Config
    from c7n.policy import Policy

    def policy(value):
        return Policy({'name': 'p', 'resource': 'aws.iam-user', 'mode': {
            'type': 'periodic', 'schedule': 'rate(1 day)', 'role': 'r',
            'execution-options': {'securityhub_export': value}}},
            Config.empty(region='us-east-1', account_id='111111111111'))

    assert securityhub.wants_export(policy(True))
    assert not securityhub.wants_export(policy(False))
    assert not securityhub.wants_export(policy('{securityhub_export}'))


def test_role_policies_name_the_security_hub_calls_only_when_needed():
    values = policy_vars(notify_transport={'type': 'sns', 'topic': 'topic'})
    from custodian_ext.bundle import collect
    react_policies = [p for _, p in collect([os.path.join(POLICIES, 'react')])]
    off = react.execution_role_policy(react_policies, values)
    assert 'SecurityHubExport' not in {s['Sid'] for s in off['Statement']}
    on = react.execution_role_policy(react_policies, dict(values, securityhub_export=True))
    [stmt] = [s for s in on['Statement'] if s['Sid'] == 'SecurityHubExport']
    assert stmt['Action'] == list(periodic.SECURITYHUB_PERMISSIONS)
