"""`make recover` drives the stock `custodian run` over policies/recover against the emulator.

Without CONFIRM=yes it is a --dryrun (selection listed, nothing changed); with
CONFIRM=yes the flagged bucket reads back as before the incident and the
flagged volume gets a restored copy. Emulator extensions used: S3
ListObjectVersions key-marker paging and DescribeInstances with repeated ids
(custodian_ext_dev/emulator/extensions.py).
"""
import json
import os
import subprocess

import pytest

from custodian_ext_dev.demo import story
from custodian_ext_dev.emulator import AMI_X86
from custodian_ext.report import load_runs
from tests.support import REPO, write_vars

pytestmark = pytest.mark.e2e

INCIDENT = 'inc-e2e'
FLAG = [{'Key': 'incident-restore', 'Value': INCIDENT}]


def make(args, env):
    proc = subprocess.run(['make', '-s', '--no-print-directory'] + args, cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (f"make {' '.join(args)}: {proc.returncode}\n"
                                  f'{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}')
    return proc


def test_make_recover_dry_run_then_confirmed(account, tmp_path):
    s3, ec2 = account.client('s3'), account.client('ec2')
    bucket = f'shop-assets-{account.id}'
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={'Status': 'Enabled'})
    s3.put_bucket_tagging(Bucket=bucket, Tagging={'TagSet': FLAG})
    clean = {f'orders/{i}.json': json.dumps({'order': i}).encode() for i in range(5)}
    for key, body in clean.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType='application/json')
    instance = ec2.run_instances(ImageId=AMI_X86, MinCount=1, MaxCount=1, TagSpecifications=[
        {'ResourceType': 'instance', 'Tags': FLAG}])['Instances'][0]
    volume = instance['BlockDeviceMappings'][0]['Ebs']['VolumeId']
    snap = ec2.create_snapshot(VolumeId=volume)['SnapshotId']
    start = story.incident_boundary()
    for key in list(clean)[:3]:
        s3.put_object(Bucket=bucket, Key=key, Body=b'\x00locked')
    s3.delete_object(Bucket=bucket, Key='orders/4.json')
    ec2.create_snapshot(VolumeId=volume)

    vars_file = write_vars(tmp_path / 'vars.yml', story.demo_vars(start, incident_id=INCIDENT))
    out = tmp_path / 'out'
    common = [f'VARS={vars_file}', f'RECOVER_OUT={out}', 'REGIONS=us-east-1']

    def current():
        found = {}
        for key in clean:
            try:
                found[key] = s3.get_object(Bucket=bucket, Key=key)['Body'].read()
            except s3.exceptions.NoSuchKey:
                found[key] = None
        return found

    attacked = current()
    proc = make(['recover'] + common, account.env)
    assert 'dry run, nothing is changed' in proc.stdout
    assert current() == attacked
    assert len(ec2.describe_volumes()['Volumes']) == 1
    dry = {r.policy: r for r in load_runs([f'{out}-dryrun'])}
    assert [b['Name'] for b in dry['x8-s3-restore-object-versions'].resources] == [bucket]
    assert not os.path.exists(f'{out}-dryrun/x8-s3-restore-object-versions/'
                              'action-results-restore-object-versions.json')

    make(['recover', 'CONFIRM=yes'] + common, account.env)
    assert current() == clean
    runs = {r.policy: r for r in load_runs([str(out)])}
    assert not [r for r in runs.values() if r.status == 'errored']
    with open(out / 'x8-s3-restore-object-versions' /
              'action-results-restore-object-versions.json') as fh:
        [s3_result] = json.load(fh)
    assert s3_result['status'] == 'done'
    assert s3_result['counts'] == {'examined': 5, 'restored': 3, 'undeleted': 1, 'untouched': 1}
    ebs_dir = out / 'x8-ebs-restore-from-snapshot'
    with open(ebs_dir / 'action-results-restore-from-snapshot.json') as fh:
        [ebs_result] = json.load(fh)
    assert (ebs_result['resource_id'], ebs_result['snapshot_id']) == (volume, snap)
    assert ebs_result['status'] == 'done'
    assert runs['x8-rds-restore-from-backup'].status == 'clean'
