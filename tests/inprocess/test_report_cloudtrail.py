"""Who did it: CloudTrail events in annotations become readable reasons and `created_by`.

The events are shaped as AWS returns them (LookupEvents records, raw CloudTrail
records per the CloudTrail record contents documentation), and in the
flattened form a filter may keep; no API is called.
"""
import datetime
import json
import os
import shutil

from custodian_ext.report import cloudtrail, document, render
from custodian_ext.report.loader import load_runs
from custodian_ext.report.reasons import reasons
from tests.support import REPO

RAW = {
    'eventVersion': '1.09',
    'userIdentity': {
        'type': 'IAMUser', 'principalId': 'AIDAEXAMPLE',
        'arn': 'arn:aws:iam::111111111111:user/deploy-bot', 'accountId': '111111111111',
        'accessKeyId': 'AKIAIOSFODNN7EXAMPLE', 'userName': 'deploy-bot'},
    'eventTime': '2026-11-28T13:36:08Z', 'eventSource': 'iam.amazonaws.com',
    'eventName': 'CreateUser', 'awsRegion': 'us-east-1', 'sourceIPAddress': '203.0.113.66',
    'userAgent': 'aws-cli/2.15.30', 'requestParameters': {'userName': 'backdoor-admin'},
}
LOOKUP = {
    'EventId': '7c6d1d2e-0000-4000-8000-000000000001', 'EventName': 'CreateUser',
    'ReadOnly': 'false', 'AccessKeyId': 'AKIAIOSFODNN7EXAMPLE',
    'EventTime': '2026-11-28T13:36:08Z', 'EventSource': 'iam.amazonaws.com',
    'Username': 'deploy-bot',
    'Resources': [{'ResourceType': 'AWS::IAM::User', 'ResourceName': 'backdoor-admin'}],
    'CloudTrailEvent': json.dumps(RAW),
}
FLAT = {
    'EventName': 'AttachUserPolicy', 'EventTime': '2026-11-28T13:36:09Z',
    'Principal': 'arn:aws:iam::111111111111:user/deploy-bot', 'PrincipalType': 'IAMUser',
    'AccessKeyId': 'AKIAIOSFODNN7EXAMPLE', 'SourceIPAddress': '203.0.113.66',
    'UserAgent': 'aws-cli/2.15.30',
    'Resources': [{'Type': 'AWS::IAM::User', 'Name': 'backdoor-admin'},
                  {'Type': 'AWS::IAM::Policy',
                   'Name': 'arn:aws:iam::aws:policy/AdministratorAccess'}],
}
ROLE = {
    'eventName': 'RunInstances', 'eventTime': '2026-11-28T13:30:00Z',
    'sourceIPAddress': '198.51.100.7', 'userAgent': 'Boto3/1.34',
    'userIdentity': {'type': 'AssumedRole', 'accessKeyId': 'ASIAEXAMPLE',
                     'sessionContext': {'sessionIssuer': {
                         'type': 'Role', 'arn': 'arn:aws:iam::111111111111:role/ops'}}},
}


def test_the_three_shapes_read_alike():
    expected = {'event': 'CreateUser', 'time': '2026-11-28T13:36:08Z',
                'principal': 'arn:aws:iam::111111111111:user/deploy-bot',
                'access_key_id': 'AKIAIOSFODNN7EXAMPLE', 'source_ip': '203.0.113.66',
                'user_agent': 'aws-cli/2.15.30'}
    lookup = cloudtrail.event_record(LOOKUP)
    assert {k: lookup[k] for k in expected} == expected
    assert lookup['resources'] == ['backdoor-admin']
    raw = cloudtrail.event_record(RAW)
    assert {k: raw[k] for k in expected} == expected
    flat = cloudtrail.event_record(FLAT)
    assert flat['principal'] == expected['principal'] and flat['source_ip'] == '203.0.113.66'
    assert cloudtrail.event_text(flat) == (
        'AttachUserPolicy backdoor-admin, arn:aws:iam::aws:policy/AdministratorAccess by '
        'arn:aws:iam::111111111111:user/deploy-bot with key AKIAIOSFODNN7EXAMPLE from '
        '203.0.113.66 at 2026-11-28T13:36:09Z')
    # an assumed role is named by the role it came from
    assert cloudtrail.event_record(ROLE)['principal'] == 'arn:aws:iam::111111111111:role/ops'


def test_only_annotations_made_of_events_count():
    assert cloudtrail.events([{'AccessKeyId': 'AKIA', 'Status': 'Active'}]) == []
    assert cloudtrail.events([LOOKUP, {'Status': 'Active'}]) == []  # mixed: not events
    assert cloudtrail.events('CreateUser') == [] and cloudtrail.events([]) == []
    assert len(cloudtrail.events([LOOKUP, FLAT])) == 2
    assert cloudtrail.created_by({'c7n:AccessKeys': [{'AccessKeyId': 'AKIA'}]}) is None


def test_created_by_is_the_earliest_event():
    r = {'c7n:history': [FLAT, LOOKUP], 'c7n:other': [ROLE]}
    assert cloudtrail.created_by(r)['event'] == 'RunInstances'
    r = {'c7n:history': [FLAT, LOOKUP]}
    assert cloudtrail.created_by(r)['event'] == 'CreateUser'


def test_reasons_and_report_show_who_did_it(tmp_path, monkeypatch):
    text = reasons({'UserName': 'backdoor-admin', 'c7n:created-events': [LOOKUP, FLAT]})
    assert text == [
        'CreateUser backdoor-admin by arn:aws:iam::111111111111:user/deploy-bot with key '
        'AKIAIOSFODNN7EXAMPLE from 203.0.113.66 at 2026-11-28T13:36:08Z',
        'AttachUserPolicy '
        'backdoor-admin, arn:aws:iam::aws:policy/AdministratorAccess by '
        'arn:aws:iam::111111111111:user/deploy-bot with key AKIAIOSFODNN7EXAMPLE from '
        '203.0.113.66 at 2026-11-28T13:36:09Z']
    # through the report: a recorded finding with such an annotation
    src = tmp_path / 'org'
    shutil.copytree(os.path.join(REPO, 'tests', 'data', 'report', 'org'), src)
    path = src / 'prod' / 'us-east-1' / 'x1-quarantined-user-active-keys' / 'resources.json'
    resources = json.loads(path.read_text())
    resources[0]['c7n:key-events'] = [LOOKUP]
    path.write_text(json.dumps(resources))
    doc = document.build(load_runs([str(src)]),
                         now=datetime.datetime(2026, 11, 28, 15, tzinfo=datetime.timezone.utc))
    [f] = [f for f in doc['findings'] if f['policy'] == 'x1-quarantined-user-active-keys']
    assert f['created_by']['principal'] == 'arn:aws:iam::111111111111:user/deploy-bot'
    assert f['created_by']['source_ip'] == '203.0.113.66'
    assert any('from 203.0.113.66' in w for w in f['why'])
    assert ('CreateUser backdoor-admin by arn:aws:iam::111111111111:user/deploy-bot'
            in render.render(doc, 'md'))
    many = reasons({'c7n:events': [FLAT] * 5 + [LOOKUP]})
    assert len(many) == 4 and many[0].startswith('CreateUser') and many[3] == (
        'and 3 more CloudTrail event(s)')
