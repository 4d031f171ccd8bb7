"""Issue #15 item 0: under c7n-org, a policy that acts is kept out of the pack's resource cache,
and every read after it sees what it changed.

c7n-org calls ``Policy.run`` (c7n defines ``run = __call__``), ``custodian run`` calls
``Policy.__call__``: the cache rule sits on ``PullMode.run``, which both reach. Before that
fix, ``policies/respond/r2-1.yml`` under c7n-org reported "still not logging" and exited 1
although the trail was logging again, and a read after ``remove-tag`` still saw the tag.
"""
import json

import pytest
import yaml

from custodian_ext_dev.emulator import AMI_X86, client_env
from tests.support import load_policy, new_account, run_cli

pytestmark = pytest.mark.e2e


def _read_back(name, base):
    return dict(base, name=name, actions=[])


@pytest.mark.parametrize('perf', ['1', '0'])
def test_reads_after_an_action_see_the_change_under_c7n_org(emulator, tmp_path, perf):
    acct = new_account(emulator.url)
    acct.client('s3').create_bucket(Bucket=f'trail-{acct.id}')
    acct.client('cloudtrail').create_trail(Name='main', S3BucketName=f'trail-{acct.id}')
    acct.client('ec2').run_instances(
        ImageId=AMI_X86, MinCount=1, MaxCount=1, InstanceType='t3.micro',
        TagSpecifications=[{'ResourceType': 'instance',
                            'Tags': [{'Key': 'quarantine', 'Value': 'yes'}]}])

    restart = load_policy('respond/r2-1.yml', 'r2-1-restart-stopped-trails')
    not_logging = load_policy('detect/r2-1.yml', 'r2-1-trail-not-logging')
    tagged = {'name': 'tagged-before', 'resource': 'aws.ec2',
              'filters': [{'tag:quarantine': 'yes'}]}
    policies = [
        not_logging,                                         # fills the cache: not logging
        restart,                                             # acts, and re-reads the status
        _read_back('trail-not-logging-after-restart', not_logging),
        tagged,                                              # fills the cache: tagged
        dict(tagged, name='untag', actions=[{'type': 'remove-tag', 'tags': ['quarantine']}]),
        dict(tagged, name='tagged-after-untag'),
    ]
    use = tmp_path / 'policies.yml'
    use.write_text(yaml.safe_dump({'policies': policies}, sort_keys=False))
    accounts = tmp_path / 'accounts.yml'
    accounts.write_text(yaml.safe_dump({'accounts': [{
        'name': 'victim', 'account_id': acct.id,
        'role': f'arn:aws:iam::{acct.id}:role/OrganizationAccountAccessRole',
        'regions': ['us-east-1']}]}))
    out = tmp_path / 'out'
    out.mkdir()
    env = dict(client_env(emulator.url), CUSTODIAN_EXT_PERF=perf, C7N_ORG_PARALLEL='1')
    proc = run_cli(['c7n-org', 'run', '-c', str(accounts), '-u', str(use), '-s', str(out),
                    '--cache-period', '0', '-r', 'us-east-1'], env)
    assert proc.returncode == 0, proc.stderr[-4000:]

    def found(name):
        return json.loads((out / 'victim' / 'us-east-1' / name / 'resources.json').read_text())

    assert len(found('r2-1-trail-not-logging')) == 1
    results = json.loads((out / 'victim' / 'us-east-1' / 'r2-1-restart-stopped-trails' /
                          'action-results-restart-logging.json').read_text())
    assert [r['status'] for r in results] == ['done'], results
    assert found('trail-not-logging-after-restart') == []
    assert acct.client('cloudtrail').get_trail_status(Name='main')['IsLogging'] is True
    assert len(found('tagged-before')) == 1
    assert found('tagged-after-untag') == []
