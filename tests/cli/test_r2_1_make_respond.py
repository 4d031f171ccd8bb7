"""`make respond` on the demo's compromised account: the stock `custodian run` over
policies/respond, first as the default dry run, then with CONFIRM=yes.

The account is the demo's story (custodian_ext_dev.demo.story) plus what the respond
policies contain: an instance and a role the responder marked, a stopped trail, a
snapshot shared with a foreign account, an attacker's user. The emulator's moto
extensions used: ListServiceSpecificCredentials (Custodian's user delete) and
ModifySnapshotAttribute's CreateVolumePermission form (Custodian's set-permissions).
"""
import json
import os
import subprocess

import pytest

from custodian_ext_dev.demo import story
from custodian_ext_dev.emulator import AMI_X86
from custodian_ext.filters.rotation import RECORD_TAG
from tests.support import REPO, write_vars

pytestmark = pytest.mark.e2e

FOREIGN = '444455556666'
CONTAIN = {'Key': 'custodian-ext:contain', 'Value': 'ir-2026-11'}
TRUST = json.dumps({'Version': '2012-10-17', 'Statement': [{
    'Effect': 'Allow', 'Principal': {'Service': 'ec2.amazonaws.com'}, 'Action': 'sts:AssumeRole'}]})


def make_respond(account, tmp_path, out, confirm):
    args = ['make', '-s', '-o', '.venv/.installed', 'respond', f'VARS={tmp_path / "vars.yml"}',
            f'RESPOND_OUT={out}', 'REGIONS=us-east-1 eu-north-1']
    if confirm:
        args.append('CONFIRM=yes')
    return subprocess.run(args, cwd=REPO, env=account.env, capture_output=True, text=True,
                          timeout=600)


def seed(account):
    story.seed_baseline(account.url, account.id)
    start = story.incident_boundary()
    story.seed_attack(account.url, account.id)
    iam, ec2 = account.client('iam'), account.client('ec2')
    s3, ct = account.client('s3'), account.client('cloudtrail')
    bucket = f'evidence-{account.id}'
    s3.create_bucket(Bucket=bucket)
    s3.create_bucket(Bucket=f'trail-{account.id}')
    trail = ct.create_trail(Name='audit', S3BucketName=f'trail-{account.id}',
                            IsMultiRegionTrail=True)['TrailARN']
    iam.create_user(UserName='backdoor')
    iam.create_login_profile(UserName='backdoor', Password='Attacker-Pass-1!')
    iam.create_access_key(UserName='backdoor')
    iam.create_role(RoleName='ci-deployer', AssumeRolePolicyDocument=TRUST, Tags=[CONTAIN])
    miner = ec2.run_instances(
        ImageId=AMI_X86, MinCount=1, MaxCount=1,
        BlockDeviceMappings=[{'DeviceName': '/dev/xvda', 'Ebs': {'VolumeSize': 8}}],
        TagSpecifications=[{'ResourceType': 'instance', 'Tags': [CONTAIN]}]
    )['Instances'][0]['InstanceId']
    vol = ec2.create_volume(AvailabilityZone='us-east-1a', Size=1)['VolumeId']
    shared = ec2.create_snapshot(VolumeId=vol)['SnapshotId']
    ec2.modify_snapshot_attribute(SnapshotId=shared, Attribute='createVolumePermission',
                                  OperationType='add', UserIds=[FOREIGN])
    return start, {'bucket': bucket, 'trail': trail, 'miner': miner, 'shared': shared}


def state(account):
    iam, ec2 = account.client('iam'), account.client('ec2')
    far = account.client('ec2', 'eu-north-1')
    instances = {i['InstanceId']: i['State']['Name'] for c in (ec2, far)
                 for r in c.describe_instances()['Reservations'] for i in r['Instances']}
    return {
        'keys': {u: {k['AccessKeyId']: k['Status']
                     for k in iam.list_access_keys(UserName=u)['AccessKeyMetadata']}
                 for u in ('deploy-bot', 'legacy-etl', 'alice')},
        'users': {u['UserName'] for u in iam.list_users()['Users']},
        'instances': instances,
        'revoked': iam.list_role_policies(RoleName='ci-deployer')['PolicyNames'],
    }


def read(out, region, policy, name):
    with open(os.path.join(out, region, policy, name)) as fh:
        return json.load(fh)


def test_make_respond_dry_run_changes_nothing_then_confirm_contains(account, tmp_path):
    start, seeded = seed(account)
    write_vars(tmp_path / 'vars.yml', story.demo_vars(
        start, incident_id='ir-2026-11', evidence_bucket=seeded['bucket']))
    ct = account.client('cloudtrail')
    before = state(account)

    dry = make_respond(account, tmp_path, tmp_path / 'dry', confirm=False)
    assert dry.returncode == 0, dry.stdout + dry.stderr[-4000:]
    assert 'dry run, nothing is changed' in dry.stdout
    assert state(account) == before
    assert not ct.get_trail_status(Name=seeded['trail'])['IsLogging']
    out = str(tmp_path / 'dry')
    assert {r['UserName'] for r in read(out, 'us-east-1', 'x1-deactivate-quarantined-keys',
                                        'resources.json')} == {'deploy-bot', 'legacy-etl'}
    assert [r['InstanceId'] for r in read(out, 'us-east-1', 'x7-snapshot-then-terminate',
                                          'resources.json')] == [seeded['miner']]
    assert len(read(out, 'eu-north-1', 'x7-snapshot-then-stop-outside-allowed-regions',
                    'resources.json')) == 2
    assert not os.path.exists(os.path.join(out, 'us-east-1', 'x1-deactivate-quarantined-keys',
                                           'action-results-deactivate-access-keys.json'))

    real = make_respond(account, tmp_path, tmp_path / 'real', confirm=True)
    assert real.returncode == 0, real.stdout + real.stderr[-6000:]
    after = state(account)
    out = str(tmp_path / 'real')
    # X1: the flagged keys are inactive and recorded; alice (no marker) keeps hers.
    assert set(after['keys']['deploy-bot'].values()) == {'Inactive'}
    assert set(after['keys']['legacy-etl'].values()) == {'Inactive'}
    assert after['keys']['alice'] == before['keys']['alice']
    tags = {t['Key']: t['Value']
            for t in account.client('iam').list_user_tags(UserName='deploy-bot')['Tags']}
    assert list(before['keys']['deploy-bot'])[0] in tags[RECORD_TAG]
    # X3: the attacker's user is gone, its details kept in the evidence bucket.
    assert after['users'] == before['users'] - {'backdoor'}
    [export] = read(out, 'us-east-1', 'x3-delete-unknown-users', 'action-results-export-user.json')
    assert export['evidence'].startswith(f"s3://{seeded['bucket']}/ir-2026-11/{account.id}/")
    # X5, R2.1, R4.2.
    assert after['revoked'] == ['AWSRevokeOlderSessions']
    assert ct.get_trail_status(Name=seeded['trail'])['IsLogging']
    assert account.client('ec2').describe_snapshot_attribute(
        SnapshotId=seeded['shared'], Attribute='createVolumePermission'
    )['CreateVolumePermissions'] == []
    # X7: the marked instance terminated after its snapshots; the out-of-region miners
    # stopped after theirs; nothing else changed.
    assert after['instances'][seeded['miner']] == 'terminated'
    far = read(out, 'eu-north-1', 'x7-snapshot-then-stop-outside-allowed-regions',
               'action-results-snapshot-before-terminate.json')
    assert {r['status'] for r in far} == {'done'} and len(far) == 2
    for r in far:
        assert after['instances'][r['resource_id']] == 'stopped' and r['snapshots']
    changed = {i for i in before['instances'] if before['instances'][i] != after['instances'][i]}
    assert changed == {seeded['miner']} | {r['resource_id'] for r in far
                                           if before['instances'][r['resource_id']] == 'running'}
    assert os.path.exists(os.path.join(out, 'us-east-1',
                                       'x7-snapshot-then-stop-outside-allowed-regions',
                                       'skipped.json'))
