"""R2.2 CloudTrail event history (``cloudtrail-events``), and R4.3's LeaveOrganization.

moto 5.2 has no LookupEvents. The emulator records the management calls it
serves and answers LookupEvents from that record, following AWS's documented
behaviour (custodian_ext_dev/emulator/event_history.py): those tests seed calls
through the emulator and run the policies in-process. The paging, rate-limit
and cut-short logic is tested with botocore's Stubber and AWS-shaped
LookupEvents responses.
"""
import datetime
import json

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from custodian_ext_dev.demo.story import incident_boundary
from custodian_ext.filters import event_history
from tests.support import key_client, load_policy, policy_vars, run_policy

ATTACKER_IP = '203.0.113.9'


@pytest.fixture(autouse=True)
def _fresh_history_cache():
    event_history.clear_cache()
    yield
    event_history.clear_cache()


def attacker(aws, name='mallory', admin=True):
    """An IAM user whose key the attacker holds."""
    iam = aws.client('iam')
    iam.create_user(UserName=name)
    if admin:
        iam.attach_user_policy(UserName=name,
                               PolicyArn='arn:aws:iam::aws:policy/AdministratorAccess')
    return iam.create_access_key(UserName=name)['AccessKey']


def test_iam_changes_name_who_when_and_from_where(aws, tmp_path):
    key = attacker(aws)
    ec2_trust = json.dumps({'Version': '2012-10-17', 'Statement': [{
        'Effect': 'Allow', 'Action': 'sts:AssumeRole',
        'Principal': {'Service': 'ec2.amazonaws.com'}}]})
    aws.client('iam').create_user(UserName='before-incident')
    aws.client('iam').create_role(RoleName='old-role', AssumeRolePolicyDocument=ec2_trust)
    start = incident_boundary()
    iam = key_client(aws, 'iam', key, source_ip=ATTACKER_IP)
    iam.create_user(UserName='eve')
    iam.create_access_key(UserName='eve')
    iam.attach_user_policy(UserName='eve', PolicyArn='arn:aws:iam::aws:policy/AdministratorAccess')
    iam.create_role(RoleName='escape-hatch', AssumeRolePolicyDocument=ec2_trust)

    [acct] = run_policy(load_policy('detect/r2-2.yml', 'r2-2-iam-changes-since-incident'),
                        policy_vars(incident_start=start), account=aws, output_dir=str(tmp_path))
    events = acct['c7n:cloudtrail-events']
    assert [e['EventName'] for e in events] == ['CreateUser', 'CreateAccessKey', 'AttachUserPolicy',
                                                'CreateRole']
    for e in events:
        assert e['Principal'] == f'arn:aws:iam::{aws.id}:user/mallory'
        assert e['PrincipalType'] == 'IAMUser' and e['AccessKeyId'] == key['AccessKeyId']
        assert e['SourceIPAddress'] == ATTACKER_IP
        assert e['UserAgent'].startswith('Boto3/')
        assert e['EventTime'] >= start
    assert {'Type': 'AWS::IAM::User', 'Name': 'eve'} in events[0]['Resources']
    assert acct['c7n:cloudtrail-history']['Region'] == 'us-east-1'
    assert 'CutShort' not in acct['c7n:cloudtrail-history']

    # "who created it", on the user itself
    users = run_policy(load_policy('detect/r2-2.yml', 'r2-2-iam-users-changed-since-incident'),
                       policy_vars(incident_start=start), account=aws, output_dir=str(tmp_path))
    assert [u['UserName'] for u in users] == ['eve']
    assert users[0]['c7n:cloudtrail-events'][0]['Principal'].endswith(':user/mallory')
    roles = run_policy(load_policy('detect/r2-2.yml', 'r2-2-iam-roles-changed-since-incident'),
                       policy_vars(incident_start=start), account=aws, output_dir=str(tmp_path))
    assert [r['RoleName'] for r in roles] == ['escape-hatch']


def test_changes_before_the_incident_are_not_findings(aws, tmp_path):
    key = attacker(aws)
    key_client(aws, 'iam', key).create_user(UserName='old-change')
    start = incident_boundary()
    aws.client('iam').list_users()  # a read after the start is no change
    assert run_policy(load_policy('detect/r2-2.yml', 'r2-2-iam-changes-since-incident'),
                      policy_vars(incident_start=start), account=aws,
                      output_dir=str(tmp_path)) == []
    assert run_policy(load_policy('detect/r2-2.yml', 'r2-2-iam-users-changed-since-incident'),
                      policy_vars(incident_start=start), account=aws,
                      output_dir=str(tmp_path)) == []


def test_federation_tokens_flag_unknown_callers_only(aws, tmp_path):
    policy = load_policy('detect/r2-2.yml', 'r2-2-federation-tokens-by-unknown-principals')
    known = attacker(aws, 'ci-bot', admin=False)
    start = incident_boundary()
    key_client(aws, 'sts', known).get_federation_token(Name='build')
    assert run_policy(policy, policy_vars(incident_start=start, known_users=['ci-bot']),
                      account=aws, output_dir=str(tmp_path)) == []
    event_history.clear_cache()
    [acct] = run_policy(policy, policy_vars(incident_start=start, known_users=[]),
                        account=aws, output_dir=str(tmp_path))
    [e] = acct['c7n:cloudtrail-events']
    assert e['EventName'] == 'GetFederationToken' and e['Principal'].endswith(':user/ci-bot')


def test_assume_role_from_another_account_is_unknown_unless_trusted(aws, tmp_path):
    """The emulator records a cross-account AssumeRole in the role's account too."""
    policy = load_policy('detect/r2-2.yml', 'r2-2-assume-role-by-unknown-principals')
    aws.client('iam').create_role(RoleName='deploy', AssumeRolePolicyDocument=json.dumps({
        'Version': '2012-10-17', 'Statement': [{'Effect': 'Allow', 'Action': 'sts:AssumeRole',
                                               'Principal': {'AWS': '123456789012'}}]}))
    start = incident_boundary()
    from custodian_ext_dev.emulator import session
    session(aws.url).client('sts').assume_role(  # from the emulator's default account
        RoleArn=f'arn:aws:iam::{aws.id}:role/deploy', RoleSessionName='partner')
    [acct] = run_policy(policy, policy_vars(incident_start=start), account=aws,
                        output_dir=str(tmp_path))
    [e] = acct['c7n:cloudtrail-events']
    assert e['PrincipalType'] == 'AWSAccount' and e['PrincipalAccount'] == '123456789012'
    event_history.clear_cache()
    assert run_policy(policy, policy_vars(incident_start=start, trusted_accounts=['123456789012']),
                      account=aws, output_dir=str(tmp_path)) == []


def test_regional_events_are_read_in_their_region(aws, tmp_path):
    key = attacker(aws)
    start = incident_boundary()
    ec2 = key_client(aws, 'ec2', key, region='us-west-2', source_ip=ATTACKER_IP)
    sg = ec2.create_security_group(GroupName='open', Description='x')['GroupId']
    ec2.authorize_security_group_ingress(GroupId=sg, IpPermissions=[{
        'IpProtocol': 'tcp', 'FromPort': 22, 'ToPort': 22,
        'IpRanges': [{'CidrIp': '0.0.0.0/0'}]}])
    ec2.create_key_pair(KeyName='backdoor')
    policy = load_policy('detect/r2-2.yml', 'r2-2-ec2-access-changes-since-incident')
    variables = policy_vars(incident_start=start)
    [acct] = run_policy(policy, variables, region='us-west-2', account=aws,
                        output_dir=str(tmp_path))
    names = [e['EventName'] for e in acct['c7n:cloudtrail-events']]
    assert names == ['AuthorizeSecurityGroupIngress', 'CreateKeyPair']
    assert {'Type': 'AWS::EC2::SecurityGroup', 'Name': sg} in \
        acct['c7n:cloudtrail-events'][0]['Resources']
    assert run_policy(policy, variables, region='us-east-1', account=aws,
                      output_dir=str(tmp_path)) == []


def test_trail_tampering_and_flow_log_deletion(aws, tmp_path):
    key = attacker(aws)
    ct = aws.client('cloudtrail')
    aws.client('s3').create_bucket(Bucket=f'trail-{aws.id}')
    ct.create_trail(Name='main', S3BucketName=f'trail-{aws.id}', IsMultiRegionTrail=True)
    ct.start_logging(Name='main')
    start = incident_boundary()
    tampering = load_policy('detect/r2-2.yml', 'r2-2-trail-tampering-since-incident')
    flow = load_policy('detect/r2-2.yml', 'r2-2-flow-logs-deleted-since-incident')
    variables = policy_vars(incident_start=start)
    assert run_policy(tampering, variables, account=aws, output_dir=str(tmp_path)) == []
    key_client(aws, 'cloudtrail', key).stop_logging(Name='main')
    ec2 = key_client(aws, 'ec2', key)
    vpc = ec2.describe_vpcs()['Vpcs'][0]['VpcId']
    event_history.clear_cache()
    [acct] = run_policy(tampering, variables, account=aws, output_dir=str(tmp_path))
    assert [e['EventName'] for e in acct['c7n:cloudtrail-events']] == ['StopLogging']
    assert run_policy(flow, variables, account=aws, output_dir=str(tmp_path)) == []

    aws.client('logs').create_log_group(logGroupName='flows')
    flow_id = ec2.create_flow_logs(
        ResourceIds=[vpc], ResourceType='VPC', TrafficType='ALL', LogGroupName='flows',
        DeliverLogsPermissionArn=f'arn:aws:iam::{aws.id}:role/flow-logs')['FlowLogIds'][0]
    ec2.delete_flow_logs(FlowLogIds=[flow_id])
    event_history.clear_cache()
    [acct] = run_policy(flow, variables, account=aws, output_dir=str(tmp_path))
    [e] = acct['c7n:cloudtrail-events']
    assert {'Type': 'AWS::EC2::FlowLog', 'Name': flow_id} in e['Resources']


# -- the emulator's LookupEvents ------------------------------------------------------

def test_emulator_lookup_events_follows_the_api(aws):
    key = attacker(aws, admin=True)
    iam = key_client(aws, 'iam', key)
    for i in range(3):
        iam.create_user(UserName=f'u{i}')
    ct = aws.client('cloudtrail')
    by_name = [{'AttributeKey': 'EventName', 'AttributeValue': 'CreateUser'}]
    page = ct.lookup_events(LookupAttributes=by_name, MaxResults=2)
    rest = ct.lookup_events(LookupAttributes=by_name, MaxResults=2, NextToken=page['NextToken'])
    names = [e['Resources'][0]['ResourceName'] for e in page['Events'] + rest['Events']]
    assert names == ['u2', 'u1', 'u0', 'mallory']  # newest first
    assert 'NextToken' not in rest
    assert page['Events'][0]['Username'] == 'mallory'
    with pytest.raises(ClientError, match='InvalidLookupAttributesException'):
        ct.lookup_events(LookupAttributes=by_name + [
            {'AttributeKey': 'ReadOnly', 'AttributeValue': 'false'}])
    now = datetime.datetime.now(datetime.timezone.utc)
    with pytest.raises(ClientError, match='InvalidTimeRangeException'):
        ct.lookup_events(StartTime=now, EndTime=now - datetime.timedelta(hours=1))
    with pytest.raises(ClientError, match='InvalidNextTokenException'):
        ct.lookup_events(NextToken='garbage')
    future = ct.lookup_events(LookupAttributes=by_name, StartTime=now + datetime.timedelta(hours=1),
                              EndTime=now + datetime.timedelta(hours=2))
    assert future['Events'] == []


# -- paging, rate limit and cut-short lookups, with Stubber ---------------------------

def _row(name, when, user='mallory', account='111122223333', resources=()):
    return {
        'EventId': f'{name}-{when.timestamp()}', 'EventName': name, 'ReadOnly': 'false',
        'AccessKeyId': 'AKIAEXAMPLE', 'EventTime': when, 'EventSource': 'iam.amazonaws.com',
        'Username': user, 'Resources': list(resources),
        'CloudTrailEvent': json.dumps({
            'eventName': name, 'awsRegion': 'us-east-1', 'sourceIPAddress': ATTACKER_IP,
            'userAgent': 'aws-cli/2.15.0', 'requestParameters': {'userName': 'eve'},
            'userIdentity': {'type': 'IAMUser', 'userName': user, 'accountId': account,
                             'arn': f'arn:aws:iam::{account}:user/{user}',
                             'accessKeyId': 'AKIAEXAMPLE'}})}


class FakeClock:
    def __init__(self):
        self.now = 1000.0
        self.sleeps = []

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def fake_time(monkeypatch):
    fake = FakeClock()
    monkeypatch.setattr(event_history, 'clock', fake.clock)
    monkeypatch.setattr(event_history, 'sleep', fake.sleep)
    monkeypatch.setattr(event_history, 'limiter', event_history.RateLimiter(0.5))
    return fake


def _client():
    return boto3.client('cloudtrail', region_name='us-east-1', aws_access_key_id='x',
                        aws_secret_access_key='y')


def _retry(func, **kw):
    return func(**kw)


def test_paging_stays_within_two_requests_per_second(fake_time):
    client = _client()
    start = datetime.datetime(2026, 11, 28, 9, 30, tzinfo=datetime.timezone.utc)
    end = start + datetime.timedelta(hours=2)
    attr = {'AttributeKey': 'ReadOnly', 'AttributeValue': 'false'}
    with Stubber(client) as stub:
        for i, token in enumerate(['t1', 't2', None]):
            expected = {'LookupAttributes': [attr], 'StartTime': start, 'EndTime': end,
                        'MaxResults': 50}
            if i:
                expected['NextToken'] = f't{i}'
            resp = {'Events': [_row('CreateUser', start + datetime.timedelta(minutes=i))]}
            if token:
                resp['NextToken'] = token
            stub.add_response('lookup_events', resp, expected)
        events, cut = event_history.lookup(client, _retry, ('111122223333', 'us-east-1'),
                                           attr, start, end, max_pages=5)
    assert len(events) == 3 and cut is False
    assert fake_time.sleeps == [0.5, 0.5]  # three calls, 0.5 s apart


def test_limit_is_shared_per_account_region(fake_time):
    limiter = event_history.limiter
    limiter.wait(('1', 'us-east-1'))
    limiter.wait(('1', 'us-west-2'))  # another region: no wait
    limiter.wait(('1', 'us-east-1'))
    assert fake_time.sleeps == [0.5]


def test_page_cap_cuts_short_and_says_so(fake_time):
    client = _client()
    start = datetime.datetime(2026, 11, 28, 9, 30, tzinfo=datetime.timezone.utc)
    end = start + datetime.timedelta(hours=1)
    with Stubber(client) as stub:
        # The window's whole history is busy: its first page covers one minute of the hour.
        stub.add_response('lookup_events', {'Events': [
            _row('RunInstances', end), _row('RunInstances', end - datetime.timedelta(minutes=1))],
            'NextToken': 'more'}, {'StartTime': start, 'EndTime': end, 'MaxResults': 50})
        # The write stream hits the cap, so each write event name is looked up on its own.
        for _ in range(2):
            stub.add_response('lookup_events', {'Events': [
                _row('RunInstances', start)], 'NextToken': 'more'})
        stub.add_response('lookup_events', {'Events': [_row('CreateUser', start)]},
                          {'LookupAttributes': [{'AttributeKey': 'EventName',
                                                 'AttributeValue': 'CreateUser'}],
                           'StartTime': start, 'EndTime': end, 'MaxResults': 50})
        for _ in range(2):
            stub.add_response('lookup_events', {'Events': [], 'NextToken': 'more'})
        events, cut_short = event_history.history(
            client, _retry, ('1', 'us-east-1'), ['CreateUser', 'AssumeRole'], start, end,
            max_pages=2)
    assert [e['EventName'] for e in events] == ['CreateUser']
    assert cut_short == ['AssumeRole']


def test_a_quiet_region_answers_every_name_from_one_read(fake_time):
    """A region whose whole history in the window fits in HISTORY_PAGES pages is read once,
    without a lookup attribute, and that read answers every name (reads and writes)."""
    client = _client()
    start = datetime.datetime(2026, 11, 28, 9, 30, tzinfo=datetime.timezone.utc)
    end = start + datetime.timedelta(hours=1)
    rows = [_row(n, start + datetime.timedelta(minutes=i)) for i, n in enumerate(
        ['CreateUser', 'ListUsers', 'AssumeRole', 'RunInstances'])]
    with Stubber(client) as stub:
        stub.add_response('lookup_events', {'Events': rows[::-1]},
                          {'StartTime': start, 'EndTime': end, 'MaxResults': 50})
        events, cut_short = event_history.history(
            client, _retry, ('1', 'us-east-1'), ['CreateUser', 'AssumeRole', 'DeleteTrail'],
            start, end, max_pages=2)
        # and again, for another policy of the run: the same read, no request
        again, _ = event_history.history(client, _retry, ('1', 'us-east-1'), ['RunInstances'],
                                         start, end, max_pages=2)
        stub.assert_no_pending_responses()
    assert sorted(e['EventName'] for e in events) == ['AssumeRole', 'CreateUser']
    assert cut_short == []
    assert [e['EventName'] for e in again] == ['RunInstances']


def test_a_window_older_than_the_history_kept_starts_where_every_policy_shares_it():
    """incident_start older than CloudTrail's 90 days: the window starts at the oldest
    moment kept, rounded up to CLAMP_STEP, so policies started seconds apart ask for the
    same window (the lookups' cache keys on its start); a newer start is kept as it is."""
    since = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    now = datetime.datetime(2026, 12, 3, 1, 2, 3, 456789, tzinfo=datetime.timezone.utc)
    first = event_history.window_start(since, now)
    oldest = now - datetime.timedelta(days=event_history.HISTORY_DAYS)
    assert oldest <= first < oldest + datetime.timedelta(seconds=event_history.CLAMP_STEP)
    assert first.timestamp() % event_history.CLAMP_STEP == 0
    assert event_history.window_start(since, now + datetime.timedelta(seconds=30)) == first
    recent = now - datetime.timedelta(days=3)
    assert event_history.window_start(recent, now) == recent


def test_policies_with_an_old_incident_start_share_one_read(aws, tmp_path, monkeypatch):
    """Two policies of one sweep, incident_start a year back: one read of the region's
    history answers both (each asked for its own window before, a few ms apart)."""
    asked = []
    real = event_history.lookup

    def recording(client, retry, key, attribute, start, *args, **kw):
        asked.append((attribute and attribute['AttributeValue'], start))
        return real(client, retry, key, attribute, start, *args, **kw)

    monkeypatch.setattr(event_history, 'lookup', recording)
    known = attacker(aws, 'ci-bot', admin=False)
    key_client(aws, 'sts', known).get_federation_token(Name='build')
    old = (datetime.datetime.now(datetime.timezone.utc)
           - datetime.timedelta(days=365)).strftime('%Y-%m-%dT%H:%M:%SZ')
    [acct] = run_policy(
        load_policy('detect/r2-2.yml', 'r2-2-federation-tokens-by-unknown-principals'),
        policy_vars(incident_start=old), account=aws, output_dir=str(tmp_path))
    assert [e['EventName'] for e in acct['c7n:cloudtrail-events']] == ['GetFederationToken']
    assert 'WindowClamped' in acct['c7n:cloudtrail-history']
    run_policy(load_policy('detect/r2-2.yml', 'r2-2-assume-role-by-unknown-principals'),
               policy_vars(incident_start=old), account=aws, output_dir=str(tmp_path))
    assert [a for a, _ in asked] == [None]


def test_cut_short_history_matches_the_account_even_without_events(monkeypatch, tmp_path):
    """A history not read to the end is never reported as 'nothing happened'."""
    monkeypatch.setattr(event_history, 'history',
                        lambda *a, **kw: ([], ['AssumeRole']))
    data = load_policy('detect/r2-2.yml', 'r2-2-assume-role-by-unknown-principals')
    from c7n.config import Config
    from c7n.policy import Policy
    from c7n.resources import load_resources
    load_resources(('aws.account',))
    p = Policy(dict(data), Config.empty(region='us-east-1', account_id='111122223333',
                                        output_dir=str(tmp_path)))
    p.expand_variables(p.get_variables(policy_vars(incident_start='2026-11-28T09:30:00Z')))
    f = p.resource_manager.filters[0]
    monkeypatch.setattr(event_history, 'local_session', lambda factory: type(
        'S', (), {'client': staticmethod(lambda *a, **kw: _client())})())
    [acct] = f.process([{'account_id': '111122223333'}])
    assert acct['c7n:cloudtrail-events'] == []
    assert acct['c7n:cloudtrail-history']['CutShort'] == ['AssumeRole']


def test_known_principals():
    class Manager:
        class config:
            account_id = '111122223333'
    f = event_history.CloudTrailEvents({'type': 'cloudtrail-events', 'events': ['X'],
                                        'since': '2026-01-01T00:00:00Z',
                                        'known-users': [['alice']], 'known-roles': ['app-*'],
                                        'known-accounts': [['444455556666'], []]}, Manager)
    known = f.is_known
    assert known({'PrincipalType': 'AWSService'})
    assert known({'PrincipalType': 'IAMUser', 'Principal': 'arn:aws:iam::111122223333:user/alice',
                  'PrincipalAccount': '111122223333'})
    assert not known({'PrincipalType': 'IAMUser', 'PrincipalAccount': '111122223333',
                      'Principal': 'arn:aws:iam::111122223333:user/mallory'})
    assert known({'PrincipalType': 'AssumedRole', 'PrincipalAccount': '111122223333',
                  'SessionIssuer': 'arn:aws:iam::111122223333:role/app-web'})
    assert known({'PrincipalType': 'AssumedRole', 'PrincipalAccount': '111122223333',
                  'SessionIssuer': 'arn:aws:iam::111122223333:role/aws-service-role/'
                                   'ecs.amazonaws.com/AWSServiceRoleForECS'})
    assert not known({'PrincipalType': 'AssumedRole', 'PrincipalAccount': '111122223333',
                      'SessionIssuer': 'arn:aws:iam::111122223333:role/backdoor'})
    assert not known({'PrincipalType': 'Root', 'PrincipalAccount': '111122223333'})
    assert known({'PrincipalType': 'AWSAccount', 'PrincipalAccount': '444455556666'})
    assert not known({'PrincipalType': 'AWSAccount', 'PrincipalAccount': '999999999999'})


def test_the_lookups_of_one_read_wait_on_aws_together():
    """One slow answer does not hold back the next lookup's slot (LookupEvents' p90 is about
    a second): the lookups of one read are in flight together (each call here waits until
    all three are: one after another, the first would wait alone until it timed out), and
    their answers come back in the order asked."""
    import threading
    together = threading.Barrier(3, timeout=30)

    def call(i):
        def lookup():
            together.wait()
            return i
        return lookup
    assert event_history.lookups_at_once([call(i) for i in range(3)]) == [0, 1, 2]
    assert event_history.lookups_at_once([lambda: 'one']) == ['one']
    assert event_history.lookups_at_once([]) == []


def test_of_failed_lookups_the_first_asked_is_raised():
    """An error is raised as it was one lookup after another: the first in order, whichever
    answered first."""
    import threading
    second_failed = threading.Event()

    def first():
        second_failed.wait(timeout=30)
        raise ValueError('first')

    def second():
        second_failed.set()
        raise ValueError('second')
    with pytest.raises(ValueError, match='first'):
        event_history.lookups_at_once([lambda: 'ok', first, second])
