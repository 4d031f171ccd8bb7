"""The resource filters where the emulator cannot show the case: botocore Stubber
with AWS-shaped responses (Lightsail, which moto lacks; API errors; ECS clusters
dated by tasks and container instances), and the pure logic.

Stubbed clients point at an unused loopback port and a Stubber answers every
call, so nothing leaves the process; an unexpected call fails the test.
"""
import copy
import datetime

import boto3
import botocore.session
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from c7n.config import Config
from c7n.exceptions import PolicyExecutionError, PolicyValidationError
from c7n.policy import Policy
from c7n.resources import load_resources

import custodian_ext  # noqa: F401  registers the pack
from custodian_ext.filters.instances import instance_created, type_patterns_match
from custodian_ext.filters.shares import summarize_statements, untrusted_grantees
from tests.support import load_policy, policy_vars, reset_sessions

ACCOUNT = '123456789012'
START = '2026-11-28T09:30:00Z'
BEFORE = datetime.datetime(2026, 11, 1, tzinfo=datetime.timezone.utc)
AFTER = datetime.datetime(2026, 11, 28, 10, 0, tzinfo=datetime.timezone.utc)


class Stubs:
    """Stubbed botocore clients, one per service, behind a c7n session factory."""

    def __init__(self, region):
        self.region = region
        self.clients, self.stubbers = {}, {}
        self._session = botocore.session.get_session()

    def __call__(self, service):
        if service not in self.clients:
            c = self._session.create_client(
                service, region_name=self.region, endpoint_url='http://127.0.0.1:9',
                aws_access_key_id='stub', aws_secret_access_key='stub')
            self.clients[service] = c
            self.stubbers[service] = Stubber(c)
            self.stubbers[service].activate()
        return self.stubbers[service]

    def factory(self):
        stubs = self

        class Session(boto3.Session):
            def client(self, service, *args, **kw):
                stubs(service)
                return stubs.clients[service]

        def make(*args, **kw):
            return Session(aws_access_key_id='stub', aws_secret_access_key='stub',
                           region_name=stubs.region)
        make.region = self.region
        return make

    def assert_done(self):
        for s in self.stubbers.values():
            s.assert_no_pending_responses()


@pytest.fixture
def stubs(tmp_path, monkeypatch):
    # c7n writes policy output under the working directory when none is given.
    monkeypatch.chdir(tmp_path)

    def make(region='us-east-1'):
        return Stubs(region)
    reset_sessions()
    yield make
    reset_sessions()


def policy(data, stubs, region, output_dir='', **variables):
    load_resources((data['resource'],))
    config = Config.empty(region=region, account_id=ACCOUNT, output_dir=output_dir,
                          cache='', cache_period=0)
    p = Policy(copy.deepcopy(data), config, session_factory=stubs.factory())
    values = policy_vars(incident_start=START, allowed_regions=['us-east-1', 'us-west-2'],
                         trusted_accounts=['111111111111'])
    values.update(variables)
    p.expand_variables(p.get_variables(values))
    p.validate()
    return p


# -- Lightsail (moto has no Lightsail API) -------------------------------------

def lightsail_instance(name, region, created):
    return {
        'name': name, 'arn': f'arn:aws:lightsail:{region}:{ACCOUNT}:Instance/{name}-0001',
        'supportCode': f'{ACCOUNT}/i-0abc', 'createdAt': created,
        'location': {'availabilityZone': region + 'a', 'regionName': region},
        'resourceType': 'Instance', 'tags': [], 'blueprintId': 'ubuntu_22_04',
        'blueprintName': 'Ubuntu', 'bundleId': 'xlarge_3_0', 'isStaticIp': False,
        'privateIpAddress': '172.26.5.10', 'publicIpAddress': '13.48.1.2',
        'hardware': {'cpuCount': 4, 'ramSizeInGb': 16.0},
        'state': {'code': 16, 'name': 'running'}, 'username': 'ubuntu',
        'sshKeyName': 'LightsailDefaultKeyPair'}


R33_LIGHTSAIL = load_policy('detect/r3-3.yml', 'r3-3-lightsail-instances-outside-allowed-regions')
X6_LIGHTSAIL = load_policy('detect/x6.yml', 'x6-new-lightsail-instances')


def test_r3_3_lightsail_flags_an_instance_in_an_unused_region(stubs):
    s = stubs('eu-north-1')
    s('lightsail').add_response('get_instances', {'instances': [
        lightsail_instance('box', 'eu-north-1', BEFORE)]})
    found = policy(R33_LIGHTSAIL, s, 'eu-north-1').run()
    assert [r['name'] for r in found] == ['box']
    s.assert_done()


def test_r3_3_lightsail_calls_nothing_in_an_allowed_region(stubs, tmp_path):
    s = stubs('us-west-2')
    s('lightsail')  # no response queued: any call would fail the test
    assert policy(R33_LIGHTSAIL, s, 'us-west-2', output_dir=str(tmp_path)).run() == []
    assert (tmp_path / R33_LIGHTSAIL['name'] / 'skipped.json').exists()


def test_x6_lightsail_flags_only_instances_created_since_the_incident(stubs):
    s = stubs('us-east-1')
    s('lightsail').add_response('get_instances', {'instances': [
        lightsail_instance('blog', 'us-east-1', BEFORE),
        lightsail_instance('miner', 'us-east-1', AFTER)]})
    found = policy(X6_LIGHTSAIL, s, 'us-east-1').run()
    assert [r['name'] for r in found] == ['miner']


# -- API errors fail the run instead of passing as "not shared" ----------------

def test_snapshot_share_check_raises_when_permissions_cannot_be_read(stubs):
    s = stubs('us-east-1')
    s('ec2').add_response('describe_snapshots', {'Snapshots': [{
        'SnapshotId': 'snap-0123456789abcdef0', 'VolumeId': 'vol-0123456789abcdef0',
        'State': 'completed', 'StartTime': BEFORE, 'OwnerId': ACCOUNT, 'VolumeSize': 8}]})
    s('ec2').add_client_error('describe_snapshot_attribute', 'UnauthorizedOperation',
                              'You are not authorized to perform this operation.')
    p = policy(load_policy('detect/r4-2-shares.yml', 'r4-2-ebs-snapshot-shared'), s, 'us-east-1')
    with pytest.raises(ClientError, match='UnauthorizedOperation'):
        p.run()


def test_lambda_policy_check_raises_when_a_policy_cannot_be_read(stubs):
    s = stubs('us-east-1')
    s('lambda').add_response('list_functions', {'Functions': [{
        'FunctionName': 'fn', 'FunctionArn': f'arn:aws:lambda:us-east-1:{ACCOUNT}:function:fn',
        'Runtime': 'python3.12', 'LastModified': '2026-11-01T00:00:00.000+0000'}]})
    s('resourcegroupstaggingapi').add_response('get_resources', {'ResourceTagMappingList': []})
    s('lambda').add_client_error('get_policy', 'AccessDeniedException', 'denied', 403)
    p = policy(load_policy('detect/r4-2-shares.yml', 'r4-2-lambda-public-or-foreign'), s,
               'us-east-1')
    with pytest.raises(ClientError, match='AccessDenied'):
        p.run()


def test_bucket_checks_raise_when_a_bucket_detail_was_denied(stubs):
    s = stubs('us-east-1')
    p = policy(load_policy('detect/r4-2-shares.yml', 'r4-2-bucket-policy-untrusted'), s,
               'us-east-1')
    readable = p.resource_manager.filters[0]
    ok = {'Name': 'fine', 'Policy': None, 'Location': {}}
    assert readable.process([ok]) == [ok]
    denied = {'Name': 'locked', 'Location': {}, 'c7n:DeniedMethods': ['get_bucket_policy']}
    with pytest.raises(PolicyExecutionError,
                       match=r'locked \(get_bucket_policy\).*s3:GetBucketPolicy'):
        readable.process([ok, denied])


def test_bucket_check_refuses_a_policy_that_does_not_fetch_the_detail(stubs):
    data = load_policy('detect/x8.yml', 'x8-s3-buckets-without-versioning')
    data['query'] = [{'augment-keys': ['Policy']}]
    with pytest.raises(PolicyValidationError, match='does not fetch Versioning'):
        policy(data, stubs('us-east-1'), 'us-east-1')


# -- ECS clusters dated by their contents --------------------------------------

def _cluster(name):
    return {'clusterArn': f'arn:aws:ecs:us-east-1:{ACCOUNT}:cluster/{name}', 'clusterName': name,
            'status': 'ACTIVE', 'registeredContainerInstancesCount': 1, 'runningTasksCount': 1,
            'pendingTasksCount': 0, 'activeServicesCount': 0}


def test_ecs_cluster_dated_by_tasks_and_container_instances(stubs):
    """'jobs' runs scheduled tasks on an old container instance: not new. 'fresh' holds only
    tasks started since the incident: nothing older, so it was created after it."""
    s = stubs('us-east-1')
    ecs = s('ecs')
    ecs.add_response('list_clusters', {'clusterArns': [_cluster('jobs')['clusterArn'],
                                                       _cluster('fresh')['clusterArn']]})
    ecs.add_response('describe_clusters', {'clusters': [_cluster('jobs'), _cluster('fresh')]})
    # jobs: no service, an old container instance -> older than the incident; tasks not read
    ecs.add_response('list_services', {'serviceArns': []})
    ecs.add_response('list_container_instances', {'containerInstanceArns': [
        f'arn:aws:ecs:us-east-1:{ACCOUNT}:container-instance/jobs/abc']})
    ecs.add_response('describe_container_instances', {'containerInstances': [{
        'containerInstanceArn': f'arn:aws:ecs:us-east-1:{ACCOUNT}:container-instance/jobs/abc',
        'ec2InstanceId': 'i-0123456789abcdef0', 'registeredAt': BEFORE}], 'failures': []})
    # fresh: only a task, created after the incident
    ecs.add_response('list_services', {'serviceArns': []})
    ecs.add_response('list_container_instances', {'containerInstanceArns': []})
    task = f'arn:aws:ecs:us-east-1:{ACCOUNT}:task/fresh/0f1e2d3c'
    ecs.add_response('list_tasks', {'taskArns': [task]})
    ecs.add_response('describe_tasks', {'tasks': [{'taskArn': task, 'createdAt': AFTER,
                                                   'group': 'family:xmrig'}], 'failures': []})
    found = policy(load_policy('detect/x6.yml', 'x6-new-ecs-clusters'), s, 'us-east-1').run()
    assert [r['clusterName'] for r in found] == ['fresh']
    assert found[0]['c7n:cluster-activity'] == {
        'first_activity': '2026-11-28T10:00:00Z', 'first_activity_of': 'task 0f1e2d3c',
        'nothing_older': True, 'new_services': []}
    s.assert_done()


# -- pure logic ----------------------------------------------------------------

def test_a_restarted_old_instance_is_dated_by_its_root_volume():
    restarted = {'RootDeviceName': '/dev/xvda', 'LaunchTime': AFTER, 'BlockDeviceMappings': [
        {'DeviceName': '/dev/xvdb', 'Ebs': {'AttachTime': AFTER}},
        {'DeviceName': '/dev/xvda', 'Ebs': {'AttachTime': BEFORE}}]}
    assert instance_created(restarted) == (BEFORE, 'root volume attach time')
    instance_store = {'RootDeviceName': '/dev/sda1', 'LaunchTime': AFTER, 'BlockDeviceMappings': []}
    assert instance_created(instance_store) == (AFTER, 'launch time')


def test_instance_type_patterns():
    patterns = policy_vars(allowed_regions=['us-east-1'],
                           incident_start=START)['unusual_instance_types']
    assert type_patterns_match('p4d.24xlarge', patterns) == 'p4d.*'
    assert type_patterns_match('ml.p3.2xlarge', patterns) == 'p3.*'
    assert type_patterns_match('c7i.metal-48xl', patterns) is None
    assert type_patterns_match('m5.metal', patterns) == '*.metal'
    assert type_patterns_match('t3.micro', patterns) is None


def test_untrusted_grantees():
    trusted = {ACCOUNT, '111111111111'}
    assert untrusted_grantees(['all', '111111111111', '999999999999'], trusted) == [
        '999999999999', 'all']
    own_org = f'arn:aws:organizations::{ACCOUNT}:organization/o-abc123'
    other_ou = 'arn:aws:organizations::999999999999:ou/o-zzz/ou-zzz-1'
    assert untrusted_grantees([own_org, other_ou], trusted) == [other_ou]


def test_statement_summary_names_principals_and_source_accounts():
    assert summarize_statements([
        {'Principal': '*'},
        {'Principal': {'AWS': ['arn:aws:iam::999999999999:root']}},
        {'Principal': {'Service': 's3.amazonaws.com'},
         'Condition': {'StringEquals': {'AWS:SourceAccount': '888888888888'}}},
    ]) == ['*', 'arn:aws:iam::999999999999:root', 's3.amazonaws.com from 888888888888']


def test_created_since_rejects_a_value_that_is_not_a_time(stubs):
    data = load_policy('detect/x6.yml', 'x6-new-instances')
    data['filters'][1]['since'] = 'yesterday'
    with pytest.raises(PolicyValidationError, match="since 'yesterday' is not a timestamp"):
        policy(data, stubs('us-east-1'), 'us-east-1')


def test_unsubstituted_settings_are_validated_through_a_copy():
    """custodian run validates each policy before it substitutes settings; the hook checks a
    copy with example values and leaves the placeholders for the real substitution."""
    data = load_policy('detect/x6.yml', 'x6-new-amis')
    load_resources(('aws.ami',))
    p = Policy(copy.deepcopy(data), Config.empty(region='us-east-1', account_id=ACCOUNT))
    p.validate()
    assert p.data['filters'][0]['value'] == '{incident_start}'
    bad = copy.deepcopy(data)
    bad['filters'][0]['op'] = 'no-such-op'
    with pytest.raises(PolicyValidationError):
        Policy(bad, Config.empty(region='us-east-1', account_id=ACCOUNT)).validate()


def test_report_reads_the_resource_annotations():
    from custodian_ext.report.reasons import reasons
    snap = {'SnapshotId': 'snap-1', 'VolumeId': 'vol-1', 'VolumeSize': 8,
            'c7n:shared-with': {'public': True, 'accounts': ['999999999999']},
            'c7n:CrossAccountViolations': ['999999999999', 'all']}
    assert reasons(snap, resource_type='aws.ebs-snapshot') == [
        'vol-1, 8 GiB', 'PUBLIC (everyone); shared with untrusted 999999999999']
    fn = {'FunctionName': 'fn', 'Runtime': 'python3.12', 'c7n:Policy': '{...}',
          'c7n:untrusted-principals': ['*'],
          'c7n:foreign-layers': ['arn:aws:lambda:us-east-1:999999999999:layer:x:1']}
    assert reasons(fn, resource_type='aws.lambda')[1:] == [
        'resource policy lets in *',
        'loads layers of untrusted accounts: arn:aws:lambda:us-east-1:999999999999:layer:x:1']
    ec2 = {'InstanceType': 'p3.2xlarge', 'c7n:created': '2026-11-28T10:00:00Z',
           'c7n:created-from': 'root volume attach time', 'c7n:unusual-instance-type': 'p3.*'}
    assert reasons(ec2, resource_type='aws.ec2')[1:] == [
        'first launched 2026-11-28T10:00:00Z (root volume attach time)',
        "type p3.2xlarge matches unusual_instance_types pattern 'p3.*'"]
