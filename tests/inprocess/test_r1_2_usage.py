"""R1.2 recent use of users, roles, groups and policies (``used-since``, RoleLastUsed).

moto 5.2 has no service-last-accessed API. The filter's job polling (in
progress, completed, failed, timed out) is tested with botocore's Stubber and
AWS-shaped responses. The emulator answers the same API from the calls it
records (custodian_ext_dev/emulator/event_history.py), which the policy tests use;
RoleLastUsed is moto's own.
"""
import datetime
import json
import threading

import boto3
import pytest
from botocore.stub import Stubber
from c7n.exceptions import PolicyExecutionError

from custodian_ext_dev.demo.story import incident_boundary
from custodian_ext.filters import usage
from tests.support import key_client, load_policy, policy_vars, run_policy

USERS = load_policy('detect/r1-2.yml', 'r1-2-iam-users-used-since-incident')
ROLES = load_policy('detect/r1-2.yml', 'r1-2-iam-roles-used-since-incident')
GROUPS = load_policy('detect/r1-2.yml', 'r1-2-iam-groups-used-since-incident')
POLICIES = load_policy('detect/r1-2.yml', 'r1-2-iam-policies-used-since-incident')
ROLES_LAST_USED = load_policy('detect/r1-2.yml', 'r1-2-roles-last-used-since-incident')
SINCE = datetime.datetime(2026, 11, 28, 9, 30, tzinfo=datetime.timezone.utc)


def test_users_groups_and_policies_used_since_the_incident(aws, tmp_path):
    iam = aws.client('iam')
    keys, arns = {}, {}
    for user in ('active', 'idle'):
        iam.create_user(UserName=user)
        keys[user] = iam.create_access_key(UserName=user)['AccessKey']
        iam.create_group(GroupName=f'{user}-team')
        iam.add_user_to_group(GroupName=f'{user}-team', UserName=user)
        arns[user] = iam.create_policy(PolicyName=f'{user}-policy', PolicyDocument=json.dumps({
            'Version': '2012-10-17', 'Statement': [
                {'Effect': 'Allow', 'Action': 'ec2:Describe*', 'Resource': '*'}]}))['Policy']['Arn']
        iam.attach_user_policy(UserName=user, PolicyArn=arns[user])
    key_client(aws, 'ec2', keys['idle']).describe_regions()  # before the incident
    start = incident_boundary()
    key_client(aws, 'ec2', keys['active'], region='eu-west-1').describe_regions()
    variables = policy_vars(incident_start=start)
    [user] = run_policy(USERS, variables, account=aws, output_dir=str(tmp_path))
    assert user['UserName'] == 'active'
    [svc] = user['c7n:used-since']
    assert (svc['ServiceNamespace'], svc['LastAuthenticatedRegion']) == ('ec2', 'eu-west-1')
    [group] = run_policy(GROUPS, variables, account=aws, output_dir=str(tmp_path))
    assert group['GroupName'] == 'active-team'
    assert group['c7n:used-since'][0]['LastAuthenticatedEntity'].endswith(':user/active')
    [policy] = run_policy(POLICIES, variables, account=aws, output_dir=str(tmp_path))
    assert policy['Arn'] == arns['active']


def test_roles_used_and_last_used(aws, tmp_path):
    iam = aws.client('iam')
    trust = json.dumps({'Version': '2012-10-17', 'Statement': [{
        'Effect': 'Allow', 'Principal': {'AWS': aws.id}, 'Action': 'sts:AssumeRole'}]})
    for role in ('worker', 'unused'):
        iam.create_role(RoleName=role, AssumeRolePolicyDocument=trust)
    start = incident_boundary()
    creds = aws.client('sts').assume_role(
        RoleArn=f'arn:aws:iam::{aws.id}:role/worker', RoleSessionName='job')['Credentials']
    key_client(aws, 'ec2', {'AccessKeyId': creds['AccessKeyId'],
                            'SecretAccessKey': creds['SecretAccessKey']}).describe_regions()
    variables = policy_vars(incident_start=start)
    found = run_policy(ROLES_LAST_USED, variables, account=aws, output_dir=str(tmp_path))
    assert [r['RoleName'] for r in found] == ['worker']
    [role] = run_policy(ROLES, variables, account=aws, output_dir=str(tmp_path))
    assert role['RoleName'] == 'worker'
    assert role['c7n:used-since'][0]['ServiceNamespace'] == 'ec2'


# -- job polling, with Stubber ------------------------------------------------------

class Manager:
    """The parts of a resource manager ``used-since`` uses."""

    def __init__(self, client):
        self.client = client
        self.session_factory = None
        self.retry = staticmethod(lambda f, **kw: f(**kw))

    def get_arns(self, resources):
        return [r['Arn'] for r in resources]


def _filter(monkeypatch, client, **data):
    monkeypatch.setattr(usage, 'local_session', lambda factory: type(
        'S', (), {'client': staticmethod(lambda name: client)})())
    sleeps = []
    monkeypatch.setattr(usage, 'sleep', sleeps.append)
    f = usage.UsedSince(dict({'type': 'used-since', 'since': SINCE.isoformat()}, **data),
                        Manager(client))
    f.manager.retry = lambda func, **kw: func(**kw)
    return f, sleeps


def _job(status, services=(), error=None):
    # JobCompletionDate is a required member of the response shape, whatever the status.
    resp = {'JobStatus': status, 'JobType': 'SERVICE_LEVEL', 'JobCreationDate': SINCE,
            'JobCompletionDate': SINCE, 'ServicesLastAccessed': list(services)}
    if error:
        resp['Error'] = error
    return resp


def _iam():
    return boto3.client('iam', region_name='us-east-1', aws_access_key_id='x',
                        aws_secret_access_key='y')


USER = {'UserName': 'bob', 'Arn': 'arn:aws:iam::111122223333:user/bob'}


def test_polls_until_complete_and_names_the_services(monkeypatch):
    iam = _iam()
    f, sleeps = _filter(monkeypatch, iam)
    with Stubber(iam) as stub:
        stub.add_response('generate_service_last_accessed_details', {'JobId': 'j' * 36},
                          {'Arn': USER['Arn']})
        stub.add_response('get_service_last_accessed_details', _job('IN_PROGRESS'))
        stub.add_response('get_service_last_accessed_details', _job('COMPLETED', [
            {'ServiceName': 'Amazon EC2', 'ServiceNamespace': 'ec2',
             'LastAuthenticated': SINCE + datetime.timedelta(hours=1),
             'LastAuthenticatedRegion': 'eu-north-1', 'TotalAuthenticatedEntities': 1},
            {'ServiceName': 'AWS IAM', 'ServiceNamespace': 'iam',
             'LastAuthenticated': SINCE - datetime.timedelta(days=3),
             'TotalAuthenticatedEntities': 1},
            {'ServiceName': 'Amazon S3', 'ServiceNamespace': 's3',
             'TotalAuthenticatedEntities': 0}]))
        [user] = f.process([dict(USER)])
    assert [s['ServiceNamespace'] for s in user['c7n:used-since']] == ['ec2']
    assert sleeps == [1]


def test_not_used_since_is_no_match(monkeypatch):
    iam = _iam()
    f, _ = _filter(monkeypatch, iam)
    with Stubber(iam) as stub:
        stub.add_response('generate_service_last_accessed_details', {'JobId': 'j' * 36})
        stub.add_response('get_service_last_accessed_details', _job('COMPLETED', [
            {'ServiceName': 'AWS IAM', 'ServiceNamespace': 'iam',
             'LastAuthenticated': SINCE - datetime.timedelta(days=3),
             'TotalAuthenticatedEntities': 1}]))
        assert f.process([dict(USER)]) == []


def test_a_failed_job_is_an_error_not_unused(monkeypatch):
    iam = _iam()
    f, _ = _filter(monkeypatch, iam)
    with Stubber(iam) as stub:
        stub.add_response('generate_service_last_accessed_details', {'JobId': 'j' * 36})
        stub.add_response('get_service_last_accessed_details', _job(
            'FAILED', error={'Code': 'ServiceFailure', 'Message': 'try again'}))
        with pytest.raises(PolicyExecutionError, match='ServiceFailure'):
            f.process([dict(USER)])


def test_a_job_that_never_completes_times_out(monkeypatch):
    iam = _iam()
    f, sleeps = _filter(monkeypatch, iam, **{'max-wait': 2, 'poll-delay': 1})
    now = [0.0]
    monkeypatch.setattr(usage, 'clock', lambda: now[0])
    monkeypatch.setattr(usage, 'sleep', lambda s: now.__setitem__(0, now[0] + s))
    with Stubber(iam) as stub:
        stub.add_response('generate_service_last_accessed_details', {'JobId': 'j' * 36})
        for _ in range(3):
            stub.add_response('get_service_last_accessed_details', _job('IN_PROGRESS'))
        with pytest.raises(PolicyExecutionError, match='not complete after 2s'):
            f.process([dict(USER)])


def test_jobs_are_started_and_polled_two_at_a_time(monkeypatch):
    """An account with hundreds of roles waited a round trip per role, twice, one call
    after another. Here every call waits until a second one is in flight: made one at a
    time, the first call's wait breaks (and the test fails) after 5 s."""
    barrier = threading.Barrier(usage.WORKERS, timeout=5)
    recent = {'ServiceName': 'Amazon EC2', 'ServiceNamespace': 'ec2',
              'LastAuthenticated': SINCE + datetime.timedelta(hours=1),
              'LastAuthenticatedRegion': 'eu-north-1', 'TotalAuthenticatedEntities': 1}

    class IAM:
        class exceptions:
            NoSuchEntityException = type('NoSuchEntityException', (Exception,), {})

        def __init__(self):
            self.calls = []

        def generate_service_last_accessed_details(self, Arn):
            barrier.wait()
            self.calls.append('generate')
            return {'JobId': 'job-' + Arn.rsplit('/', 1)[1]}

        def get_service_last_accessed_details(self, JobId):
            barrier.wait()
            self.calls.append('get')
            name = JobId[len('job-'):]
            return _job('COMPLETED', [recent] if name in ('u1', 'u3') else [])

    iam = IAM()
    f, sleeps = _filter(monkeypatch, iam)
    users = [{'UserName': f'u{i}', 'Arn': f'arn:aws:iam::111122223333:user/u{i}'}
             for i in range(4)]
    matched = f.process(users)
    assert [u['UserName'] for u in matched] == ['u1', 'u3']
    assert matched[0]['c7n:used-since'][0]['LastAuthenticatedRegion'] == 'eu-north-1'
    assert iam.calls == ['generate'] * 4 + ['get'] * 4 and sleeps == []
