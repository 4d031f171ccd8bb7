"""Respond and recover under stress, in-process against the emulator (issue #15, item 5).

- Every respond policy, run twice: the first run acts, the second changes
  nothing (no call but reads and the claims' Parameter Store bookkeeping).
- Claims (``custodian_ext.actions.claims``): two runs, one resource, one winner;
  a stale claim is taken over; a run without Parameter Store touches nothing.
- A crash between two steps of one resource (an exception no handler catches,
  raised by the fault injector, ``tests.support.inject_faults``): the results of
  the resources before it are on disk, and the next run finishes the job
  without doing anything twice.
- Files are written whole or not at all (``custodian_ext.outputs``).

tests/cli/test_respond_stress.py sends real signals (SIGINT, SIGTERM, SIGKILL) to
`custodian run` and runs two of them at once.
"""
import datetime
import json
import os

import pytest

from custodian_ext.actions import claims as claims_module
from custodian_ext_dev.emulator import AMI_X86
from tests.support import (
    POLICIES,
    client_error,
    fast_client,
    inject_faults,
    load_policy,
    policy_vars,
    quarantine_user,
    run_policy,
)

FOREIGN, TRUSTED = '444455556666', '111122223333'
INCIDENT = 'inc-stress'
READS = ('Describe', 'Get', 'List', 'Lookup', 'Search', 'Generate', 'Head')
CLAIM_CALLS = ('PutParameter', 'DeleteParameter', 'GetParametersByPath')
ALL_RESPOND = sorted((f, p['name']) for f in os.listdir(os.path.join(POLICIES, 'respond'))
                     for p in __import__('yaml').safe_load(
                         open(os.path.join(POLICIES, 'respond', f)))['policies'])


class Crash(BaseException):
    """What no action catches: a crash between two steps (like SIGKILL, in-process)."""


def settings(**extra):
    return policy_vars(incident_id=INCIDENT, known_users=['alice'], key_grace_days=0,
                       trusted_accounts=[TRUSTED], allowed_regions=['us-east-1'], **extra)


def results(out, policy):
    """{resource id: result} of every action-results file of one policy run."""
    folder = os.path.join(out, policy)
    found = {}
    for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else ():
        if name.startswith('action-results-'):
            with open(os.path.join(folder, name)) as fh:
                for r in json.load(fh):
                    found.setdefault(r['resource_id'], []).append(r)
    return found


def instance(ec2, tags=()):
    return ec2.run_instances(
        ImageId=AMI_X86, MinCount=1, MaxCount=1,
        BlockDeviceMappings=[{'DeviceName': '/dev/xvda', 'Ebs': {'VolumeSize': 8}}],
        TagSpecifications=[{'ResourceType': 'instance', 'Tags': list(tags) + [
            {'Key': 'Name', 'Value': 'x'}]}])['Instances'][0]['InstanceId']


# -- one seed per respond policy: what it must act on --------------------------------------

def _trail(aws):
    fast_client(aws, 's3').create_bucket(Bucket=f'trail-{aws.id}')
    ct = fast_client(aws, 'cloudtrail')
    ct.create_trail(Name='audit', S3BucketName=f'trail-{aws.id}')  # created stopped


def _ebs_share(aws):
    ec2 = fast_client(aws, 'ec2')
    snap = ec2.create_snapshot(VolumeId=ec2.create_volume(
        AvailabilityZone='us-east-1a', Size=1)['VolumeId'])['SnapshotId']
    ec2.modify_snapshot_attribute(SnapshotId=snap, Attribute='createVolumePermission',
                                  OperationType='add', UserIds=[FOREIGN])


def _ami_share(aws):
    ec2 = fast_client(aws, 'ec2')
    image = ec2.create_image(InstanceId=instance(ec2), Name='leak')['ImageId']
    ec2.modify_image_attribute(ImageId=image, LaunchPermission={'Add': [{'Group': 'all'}]})


def _rds(aws):
    rds = fast_client(aws, 'rds')
    rds.create_db_instance(DBInstanceIdentifier='db', DBInstanceClass='db.t3.micro',
                           Engine='postgres', MasterUsername='u', MasterUserPassword='Passw0rd-1',
                           AllocatedStorage=20)
    return rds


def _rds_share(aws):
    rds = _rds(aws)
    rds.create_db_snapshot(DBInstanceIdentifier='db', DBSnapshotIdentifier='copy')
    rds.modify_db_snapshot_attribute(DBSnapshotIdentifier='copy', AttributeName='restore',
                                     ValuesToAdd=[FOREIGN])


def _rds_cluster_share(aws):
    rds = fast_client(aws, 'rds')
    rds.create_db_cluster(DBClusterIdentifier='orders', Engine='aurora-postgresql',
                          MasterUsername='u', MasterUserPassword='Passw0rd-1')
    rds.create_db_cluster_snapshot(DBClusterIdentifier='orders', DBClusterSnapshotIdentifier='c')
    rds.modify_db_cluster_snapshot_attribute(DBClusterSnapshotIdentifier='c',
                                             AttributeName='restore', ValuesToAdd=['all'])


def _quarantined(aws):
    quarantine_user(aws, 'leaky')


def _deactivated(aws, tmp_path):
    quarantine_user(aws, 'leaky')
    run_policy(load_policy('respond/x1.yml', 'x1-deactivate-quarantined-keys'), settings(),
               account=aws, output_dir=str(tmp_path / 'seed'))


def _users(aws):
    iam = fast_client(aws, 'iam')
    for name in ('alice', 'eve'):
        iam.create_user(UserName=name)
        iam.create_login_profile(UserName=name, Password='Some-Pass-1!')


def _role(aws):
    fast_client(aws, 'iam').create_role(
        RoleName='app', AssumeRolePolicyDocument=json.dumps({
            'Version': '2012-10-17', 'Statement': [{
                'Effect': 'Allow', 'Action': 'sts:AssumeRole',
                'Principal': {'Service': 'ec2.amazonaws.com'}}]}),
        Tags=[{'Key': 'custodian-ext:contain', 'Value': INCIDENT}])


SEEDS = {
    'r2-1-restart-stopped-trails': (_trail, 'us-east-1'),
    'r4-2-unshare-ebs-snapshots': (_ebs_share, 'us-east-1'),
    'r4-2-unshare-amis': (_ami_share, 'us-east-1'),
    'r4-2-unshare-rds-snapshots': (_rds_share, 'us-east-1'),
    'r4-2-unshare-rds-cluster-snapshots': (_rds_cluster_share, 'us-east-1'),
    'x1-deactivate-quarantined-keys': (_quarantined, 'us-east-1'),
    'x1-delete-deactivated-keys': (_deactivated, 'us-east-1'),
    'x3-delete-unknown-users': (_users, 'us-east-1'),
    'x4-require-password-reset': (_users, 'us-east-1'),
    'x4-remove-console-access': (_users, 'us-east-1'),
    'x5-revoke-role-sessions': (_role, 'us-east-1'),
    'x7-snapshot-then-terminate': (
        lambda aws: instance(fast_client(aws, 'ec2'),
                             [{'Key': 'custodian-ext:contain', 'Value': INCIDENT}]), 'us-east-1'),
    'x7-snapshot-then-stop-outside-allowed-regions': (
        lambda aws: instance(fast_client(aws, 'ec2', 'eu-north-1')), 'eu-north-1'),
    'x7-isolate-instances': (
        lambda aws: instance(fast_client(aws, 'ec2'),
                             [{'Key': 'custodian-ext:isolate', 'Value': INCIDENT}]), 'us-east-1'),
}


def test_every_respond_policy_has_a_run_twice_case():
    assert sorted(SEEDS) == sorted(name for _, name in ALL_RESPOND)


def _changes(seen):
    """The calls of a run that change something (not reads, not the claims' bookkeeping)."""
    return [(op, {k: v for k, v in params.items() if k not in ('Password', 'PolicyDocument')})
            for op, params in seen if not op.startswith(READS) and op not in CLAIM_CALLS]


@pytest.mark.parametrize('path,name', ALL_RESPOND, ids=[n for _, n in ALL_RESPOND])
def test_running_a_respond_policy_twice_changes_nothing_the_second_time(
        aws, tmp_path, monkeypatch, path, name):
    seed, region = SEEDS[name]
    if seed is _deactivated:
        seed(aws, tmp_path)
    else:
        seed(aws)
    policy = load_policy(f'respond/{path}', name)
    seen = inject_faults(monkeypatch)
    first = run_policy(policy, settings(), region=region, account=aws,
                       output_dir=str(tmp_path / 'first'))
    assert first, f'{name}: the seed gave the policy nothing to act on'
    assert _changes(seen), f'{name}: the first run changed nothing'
    done = [r for rs in results(str(tmp_path / 'first'), name).values() for r in rs]
    assert done and all(r['status'] == 'done' for r in done), done
    # no claim is left behind
    ssm = fast_client(aws, 'ssm', region)
    assert not ssm.get_parameters_by_path(Path='/custodian-ext/claims', Recursive=True)[
        'Parameters'] or name == 'x3-delete-unknown-users'  # export-user keeps its claims

    del seen[:]
    again = run_policy(policy, settings(), region=region, account=aws,
                       output_dir=str(tmp_path / 'second'))
    assert _changes(seen) == [], f'{name}: the second run changed something'
    second = [r for rs in results(str(tmp_path / 'second'), name).values() for r in rs]
    assert all(r['status'] == 'skipped' for r in second), second
    assert again == [] or second, f'{name}: matched again but recorded nothing'


# -- claims ---------------------------------------------------------------------------------

class _Manager:
    def __init__(self, account):
        import boto3
        self.data = {'name': 'p'}
        self.retry = staticmethod(lambda f, **kw: f(**kw))
        creds = account.creds
        self.session_factory = lambda *a, **kw: boto3.Session(
            aws_access_key_id=creds['AccessKeyId'], aws_secret_access_key=creds['SecretAccessKey'],
            aws_session_token=creds['SessionToken'], region_name='us-east-1')


class _Action:
    type = 'probe'

    def __init__(self, account):
        self.manager = _Manager(account)
        import logging
        self.log = logging.getLogger('test')

    def call(self, method, **params):
        return method(**params)


def test_a_claim_has_one_winner_and_a_stale_one_is_taken_over(aws, monkeypatch):
    a, b = claims_module.Claims(_Action(aws)), claims_module.Claims(_Action(aws))
    monkeypatch.setattr(claims_module, 'RUN_ID', 'run-a')
    assert a.claim('i-1') is None
    monkeypatch.setattr(claims_module, 'RUN_ID', 'run-b')
    why = b.claim('i-1')
    assert why.startswith('claimed by another run (') and 'run again after then' in why
    monkeypatch.setattr(claims_module, 'RUN_ID', 'run-a')
    a.release('i-1')
    monkeypatch.setattr(claims_module, 'RUN_ID', 'run-b')
    assert b.claim('i-1') is None           # released: the next run may claim it
    # a run that died: its claim expires with its lease and is taken over, once
    dead = claims_module.Claims(_Action(aws), lease=1)
    monkeypatch.setattr(claims_module, 'RUN_ID', 'run-dead')
    assert dead.claim('user+name@x') is None  # any resource id becomes a valid name
    monkeypatch.setattr(claims_module, '_now', lambda: datetime.datetime.now(
        datetime.timezone.utc) + datetime.timedelta(seconds=5))
    monkeypatch.setattr(claims_module, 'RUN_ID', 'run-c')
    c = claims_module.Claims(_Action(aws))
    assert c.claim('user+name@x') is None
    names = [p['Name'] for p in fast_client(aws, 'ssm').get_parameters_by_path(
        Path='/custodian-ext/claims/probe', Recursive=True)['Parameters']]
    assert [n.rsplit('/', 1)[1] for n in names if 'user_name_x' in n] == ['2']
    # two runs taking over the same stale claim: PutParameter(Overwrite=False) lets one win
    monkeypatch.setattr(claims_module, 'RUN_ID', 'run-d')
    d = claims_module.Claims(_Action(aws))
    real = d._current
    d._current = lambda path: {1: {'run': 'run-dead', 'expires': '2000-01-01T00:00:00Z'}}
    assert d.claim('user+name@x') == 'claimed by another run at the same moment'
    d._current = real


def test_without_parameter_store_nothing_is_touched(aws, tmp_path, monkeypatch):
    quarantine_user(aws, 'leaky')
    iam = fast_client(aws, 'iam')
    inject_faults(monkeypatch, PutParameter=lambda params, call: (_ for _ in ()).throw(
        client_error('AccessDeniedException', 'PutParameter')))
    from c7n.exceptions import PolicyExecutionError
    with pytest.raises(PolicyExecutionError, match='cannot claim it in Parameter Store'):
        run_policy(load_policy('respond/x1.yml', 'x1-deactivate-quarantined-keys'), settings(),
                   account=aws, output_dir=str(tmp_path))
    assert {k['Status'] for k in iam.list_access_keys(UserName='leaky')['AccessKeyMetadata']} == {
        'Active'}


# -- a crash between two steps ---------------------------------------------------------------

def _crash_once(operation):
    """A handler that crashes the first ``operation`` call, then lets them through."""
    state = {'left': 1}

    def handler(params, call):
        if state['left']:
            state['left'] -= 1
            raise Crash(f'crash before {operation}')
        return call()
    return handler


def test_keys_crash_between_record_and_deactivation_then_a_rerun_finishes(
        aws, tmp_path, monkeypatch):
    for user in ('a-user', 'b-user'):
        quarantine_user(aws, user)
    iam = fast_client(aws, 'iam')
    policy = load_policy('respond/x1.yml', 'x1-deactivate-quarantined-keys')
    seen = inject_faults(monkeypatch, UpdateAccessKey=_crash_once('UpdateAccessKey'))
    with pytest.raises(Crash):
        run_policy(policy, settings(), account=aws, output_dir=str(tmp_path / 'crashed'))
    # recorded before deactivating: the key is listed on the user but still active, which
    # the delete policy never deletes; nothing about b-user happened yet
    tags = {t['Key']: t['Value'] for t in iam.list_user_tags(UserName='a-user')['Tags']}
    assert 'custodian-ext:x1-deactivated-keys' in tags
    assert {k['Status'] for k in iam.list_access_keys(UserName='a-user')['AccessKeyMetadata']} == {
        'Active'}
    assert not iam.list_user_tags(UserName='b-user')['Tags']
    delete = run_policy(load_policy('respond/x1.yml', 'x1-delete-deactivated-keys'), settings(),
                        account=aws, output_dir=str(tmp_path / 'delete'))
    assert delete == []  # an active key is never deleted
    # the rerun finishes the job: every key inactive, each deactivated once
    del seen[:]
    run_policy(policy, settings(), account=aws, output_dir=str(tmp_path / 'rerun'))
    for user in ('a-user', 'b-user'):
        assert {k['Status'] for k in iam.list_access_keys(UserName=user)['AccessKeyMetadata']} \
            == {'Inactive'}
    assert sorted(p['UserName'] for op, p in seen if op == 'UpdateAccessKey') == [
        'a-user', 'b-user']
    # the crashed run kept a readable (empty) result file: the crash was in its first user
    crashed = results(str(tmp_path / 'crashed'), 'x1-deactivate-quarantined-keys')
    assert crashed == {}


def test_snapshot_crash_before_stop_then_a_rerun_reuses_the_snapshots(
        aws, tmp_path, monkeypatch):
    ec2 = fast_client(aws, 'ec2', 'eu-north-1')
    first, second = instance(ec2), instance(ec2)
    policy = load_policy('respond/x7.yml', 'x7-snapshot-then-stop-outside-allowed-regions')
    inject_faults(monkeypatch, StopInstances=_crash_once('StopInstances'))
    with pytest.raises(Crash):
        run_policy(policy, settings(), region='eu-north-1', account=aws,
                   output_dir=str(tmp_path / 'crashed'))
    # both started (evidence, isolation, snapshots), neither stopped; the results on disk
    # say so
    recorded = results(str(tmp_path / 'crashed'), policy['name'])
    assert {rid: rs[-1]['status'] for rid, rs in recorded.items()} == {
        first: 'failed', second: 'failed'}
    assert 'in progress' in recorded[first][-1]['reason']
    snaps = ec2.describe_snapshots(OwnerIds=['self'])['Snapshots']
    assert len(snaps) == 2
    # the crashed run's claims are still there: a rerun would wait out their lease (15
    # minutes here); tests/cli/test_respond_stress.py does that with a short lease
    ssm = fast_client(aws, 'ssm', 'eu-north-1')
    held = ssm.get_parameters_by_path(Path='/custodian-ext/claims', Recursive=True)['Parameters']
    assert len(held) == 2
    for p in held:
        ssm.delete_parameter(Name=p['Name'])
    run_policy(policy, settings(), region='eu-north-1', account=aws,
               output_dir=str(tmp_path / 'rerun'))
    done = results(str(tmp_path / 'rerun'), policy['name'])
    assert {rid: rs[-1]['status'] for rid, rs in done.items()} == {
        first: 'done', second: 'done'}
    assert all(s['reused'] for rs in done.values() for s in rs[-1]['snapshots'])
    assert len(ec2.describe_snapshots(OwnerIds=['self'])['Snapshots']) == 2  # no second set
    states = {i['InstanceId']: i['State']['Name'] for r in ec2.describe_instances()[
        'Reservations'] for i in r['Instances']}
    assert states[first] == states[second] == 'stopped'


# -- whole files -------------------------------------------------------------------------

def test_results_and_evidence_are_written_whole_or_not_at_all(tmp_path, monkeypatch):
    from custodian_ext import outputs
    target = tmp_path / 'action-results-x.json'
    target.write_text('["old"]')
    real_replace = os.replace

    def broken_replace(src, dst):
        raise OSError('disk gone')
    monkeypatch.setattr(outputs.os, 'replace', broken_replace)
    with pytest.raises(OSError):
        outputs.write_file_atomic(str(target), '["new"]')
    assert target.read_text() == '["old"]'
    assert os.listdir(tmp_path) == ['action-results-x.json']  # no temporary file left
    monkeypatch.setattr(outputs.os, 'replace', real_replace)
    outputs.write_file_atomic(str(target), '["new"]')
    assert json.loads(target.read_text()) == ['new']
