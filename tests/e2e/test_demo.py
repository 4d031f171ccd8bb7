"""`make demo`'s job, end to end: emulator, seeding, stock custodian, summary."""
import os

import pytest

from tests.support import run_cli

pytestmark = pytest.mark.e2e


def test_demo_shows_every_seeded_artifact(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith('AWS_')}
    proc = run_cli(['custodian-ext', 'demo', '-o', str(tmp_path / 'demo')], env, check=0)
    out = proc.stdout
    for needle in ('x1-quarantined-user-active-keys', 'deploy-bot', 'legacy-etl',
                   'AWSCompromisedKeyQuarantineV2', 'AWSExposedCredentialPolicy_DO_NOT_REMOVE',
                   'x2-root-access-keys', 'root access keys present',
                   'r3-3-ec2-outside-allowed-regions', 'p3.2xlarge', 'eu-north-1',
                   'x6-stopped-instances', 'c5.4xlarge', 'Errored policy runs: none'):
        assert needle in out, needle
    # alice has keys but no quarantine marker (other steps, such as X4, may list her)
    x1 = out.split('findings by runbook step')[1].split('\nX1 ', 1)[1].split('\nX2 ', 1)[0]
    assert 'deploy-bot' in x1 and 'alice' not in x1
