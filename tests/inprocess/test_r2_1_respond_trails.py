"""R2.1 restart-logging, in-process against the emulator."""
import json
import os

import pytest
from c7n.exceptions import PolicyExecutionError

from tests.support import fast_client, inject_faults, load_policy, policy_vars, run_policy

TRAILS = load_policy('respond/r2-1.yml', 'r2-1-restart-stopped-trails')


def results(out, policy, action):
    with open(os.path.join(out, policy, f'action-results-{action}.json')) as fh:
        return {r['resource_id']: r for r in json.load(fh)}


def test_restarts_stopped_trails_in_their_home_region_and_reports_one_that_stays_stopped(
        aws, tmp_path, monkeypatch):
    s3 = fast_client(aws, 's3')
    s3.create_bucket(Bucket=f'trail-logs-{aws.id}')
    home = fast_client(aws, 'cloudtrail', 'us-east-1')
    stopped = home.create_trail(Name='org-audit', S3BucketName=f'trail-logs-{aws.id}',
                                IsMultiRegionTrail=True)['TrailARN']
    logging = home.create_trail(Name='app', S3BucketName=f'trail-logs-{aws.id}')['TrailARN']
    home.start_logging(Name=logging)
    assert not home.get_trail_status(Name=stopped)['IsLogging']

    # The multi-region trail's shadow copies elsewhere are not selected (as in detect's
    # r2-1-trail-not-logging): one restart, in its home region.
    assert run_policy(TRAILS, policy_vars(), region='us-west-2', account=aws,
                      output_dir=str(tmp_path / 'shadow')) == []
    assert not home.get_trail_status(Name=stopped)['IsLogging']
    found = run_policy(TRAILS, policy_vars(), account=aws, output_dir=str(tmp_path))

    assert [t['TrailARN'] for t in found] == [stopped]
    assert home.get_trail_status(Name=stopped)['IsLogging']
    res = results(str(tmp_path), 'r2-1-restart-stopped-trails', 'restart-logging')[stopped]
    assert res['status'] == 'done' and res['home_region'] == 'us-east-1'
    assert run_policy(TRAILS, policy_vars(), account=aws, output_dir=str(tmp_path / 'again')) == []

    # StartLogging swallowed (injected): the status read back says the trail is still
    # stopped, so it is reported as not fixed.
    other = home.create_trail(Name='audit', S3BucketName=f'trail-logs-{aws.id}')['TrailARN']
    inject_faults(monkeypatch, StartLogging=lambda params, call: {})
    with pytest.raises(PolicyExecutionError, match='still not logging'):
        run_policy(TRAILS, policy_vars(), account=aws, output_dir=str(tmp_path / 'broken'))
    assert results(str(tmp_path / 'broken'), 'r2-1-restart-stopped-trails', 'restart-logging')[
        other]['status'] == 'failed'
