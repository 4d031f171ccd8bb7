"""The four headline checks through the stock `custodian run`, on a compromised and a clean account.

The compromised account is the demo's story (custodian_ext_dev.demo.story). The
root key relies on the emulator's moto extension (root row in the credential
report, AccountAccessKeysPresent), see custodian_ext_dev/emulator/extensions.py.
"""

import pytest

from custodian_ext_dev.demo import story
from custodian_ext_dev.emulator import AMI_X86
from custodian_ext.report import findings
from tests.support import by_policy, detect_sweep

pytestmark = pytest.mark.e2e


def sweep(account, tmp_path, incident_start, regions=story.SWEEP_REGIONS):
    return detect_sweep(account, tmp_path, story.demo_vars(incident_start), regions)


def test_compromised_account_trips_every_headline_check(account, tmp_path):
    story.seed_baseline(account.url, account.id)
    start = story.incident_boundary()
    story.seed_attack(account.url, account.id)
    found = by_policy(sweep(account, tmp_path, start))

    x1 = {f.resource_id: f for f in found['x1-quarantined-user-active-keys']}
    assert set(x1) == {'deploy-bot', 'legacy-etl'}  # alice has keys but no marker
    assert x1['deploy-bot'].run.region == 'us-east-1'
    [x2] = found['x2-root-access-keys']
    assert x2.resource['c7n:root-access-keys']['AccountAccessKeysPresent'] == 1
    r33 = found['r3-3-ec2-outside-allowed-regions']
    assert {f.run.region for f in r33} == {'eu-north-1'}
    assert sorted(f.resource['InstanceType'] for f in r33) == ['g4dn.xlarge', 'p3.2xlarge']
    x6 = found['x6-stopped-instances']
    assert sorted(f.resource['InstanceType'] for f in x6) == ['c5.4xlarge', 'g4dn.xlarge']
    assert all(f.resource['c7n:stopped-since'] != 'unknown' for f in x6)
    # global checks ran once, not once per region
    assert len(found['x2-root-access-keys']) == 1


def test_clean_account_has_no_findings(account, tmp_path):
    story.seed_baseline(account.url, account.id)
    for region in story.ALLOWED_REGIONS:
        account.client('ec2', region).run_instances(ImageId=AMI_X86, MinCount=1, MaxCount=1)
    start = story.incident_boundary()
    runs = sweep(account, tmp_path, start)
    headline = {'x1-quarantined-user-active-keys', 'x2-root-access-keys',
                'r3-3-ec2-outside-allowed-regions', 'x6-stopped-instances'}
    assert [f for f in findings(runs) if f.run.policy in headline] == []
    ran = {(r.policy, r.region) for r in runs if r.status == 'clean'}
    assert ('x1-quarantined-user-active-keys', 'us-east-1') in ran
    assert ('r3-3-ec2-outside-allowed-regions', 'eu-north-1') in ran
    skipped = {(r.policy, r.region) for r in runs if r.status == 'skipped'}
    assert ('r3-3-ec2-outside-allowed-regions', 'us-west-2') in skipped
