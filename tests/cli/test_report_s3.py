"""The report reads Custodian's S3 output: gzipped files under <policy>/YYYY/MM/DD/HH/.

Against moto's S3 on the emulator: the stock `custodian run -s s3://...` writes
the layout itself (c7n.output.BlobOutput), and `custodian-ext report` reads it.
"""
import gzip
import json
import os
import shutil

import pytest

from custodian_ext_dev.demo import story
from custodian_ext.report import document
from custodian_ext.report.loader import ReportInputError, load_runs
import yaml

from tests.support import REPO, load_policy, run_cli, write_vars

FIXTURE = os.path.join(REPO, 'tests', 'data', 'report', 'org')


@pytest.mark.e2e
def test_report_reads_what_custodian_wrote_to_s3(account, tmp_path):
    account.client('s3').create_bucket(Bucket='incident-output')
    story.seed_baseline(account.url, account.id)
    start = story.incident_boundary()
    story.seed_attack(account.url, account.id)
    vars_file = write_vars(tmp_path / 'vars.yml', story.demo_vars(start))
    # A fixed set of policies, so the assertions below do not move as the pack grows.
    picked = tmp_path / 'policies.yml'
    picked.write_text(yaml.safe_dump({'policies': [
        load_policy('detect/x1.yml', 'x1-quarantined-user-active-keys'),
        load_policy('detect/x2.yml', 'x2-root-access-keys'),
        load_policy('detect/r3-3.yml', 'r3-3-ec2-outside-allowed-regions'),
        load_policy('detect/x6.yml', 'x6-stopped-instances')]}))
    # ?region= spares c7n its bucket-region probe, which is hard-wired to https.
    run_cli(['custodian', 'run', '-s', 's3://incident-output/sweep?region=us-east-1',
             '--cache-period', '0',
             '--vars-file', vars_file, str(picked),
             '-r', 'us-east-1', '-r', 'eu-north-1'], account.env, check=0)
    keys = [o['Key'] for o in account.client('s3').list_objects_v2(
        Bucket='incident-output')['Contents']]
    assert any(k.startswith('sweep/us-east-1/x1-quarantined-user-active-keys/')
               and k.endswith('/resources.json.gz') for k in keys)
    proc = run_cli(['custodian-ext', 'report', 's3://incident-output/sweep?region=us-east-1',
                    '--format', 'json',
                    '-o', str(tmp_path), '--fail-on', 'critical'], account.env, check=1)
    with open(tmp_path / 'report.json') as fh:
        doc = json.load(fh)
    found = {(f['policy'], f['region'], f['resource_id']) for f in doc['findings']}
    assert {('x1-quarantined-user-active-keys', 'us-east-1', 'deploy-bot'),
            ('x1-quarantined-user-active-keys', 'us-east-1', 'legacy-etl'),
            ('x2-root-access-keys', 'us-east-1', account.id)} <= found
    assert {f['policy'] for f in doc['findings'] if f['region'] == 'eu-north-1'} == {
        'r3-3-ec2-outside-allowed-regions', 'x6-stopped-instances'}
    assert doc['summary']['runs']['errored'] == 0
    assert [(r['policy'], r['region']) for r in doc['runs'] if r['status'] == 'skipped'] == [
        ('r3-3-ec2-outside-allowed-regions', 'us-east-1')]  # written as skipped.json.gz
    assert all(r['path'].startswith('s3://incident-output/sweep/') for r in doc['runs'])
    assert 'Result: FAIL (exit 1)' in proc.stdout


def _upload_tree(s3, bucket, prefix, tree, hour):
    """Upload a local c7n-org output tree the way c7n's S3 output lays it out."""
    for root, _, files in os.walk(tree):
        rel = os.path.relpath(root, tree)
        for f in files:
            with open(os.path.join(root, f), 'rb') as fh:
                body = gzip.compress(fh.read())
            s3.put_object(Bucket=bucket, Key=f"{prefix}/{rel}/{hour}/{f}.gz", Body=body)


def test_s3_reads_the_latest_hour_of_each_policy(aws, tmp_path):
    """c7n-org layout on S3 (<account>/<region>/<policy>/YYYY/MM/DD/HH/*.gz), two sweeps."""
    s3 = aws.client('s3')
    s3.create_bucket(Bucket='org-output')
    # an hour earlier, deploy-bot was not yet flagged
    older = tmp_path / 'older' / 'prod' / 'us-east-1' / 'x1-quarantined-user-active-keys'
    shutil.copytree(os.path.join(FIXTURE, 'prod', 'us-east-1', 'x1-quarantined-user-active-keys'),
                    older)
    with open(older / 'resources.json', 'w') as fh:
        json.dump([], fh)
    _upload_tree(s3, 'org-output', 'org', str(tmp_path / 'older'), '2026/11/28/12')
    _upload_tree(s3, 'org-output', 'org', FIXTURE, '2026/11/28/13')
    runs = load_runs(['s3://org-output/org'])
    local = load_runs([FIXTURE])
    assert sorted((r.policy, r.account, r.region, r.status) for r in runs) == sorted(
        (r.policy, r.account, r.region, r.status) for r in local)
    x1 = next(r for r in runs if r.policy == 'x1-quarantined-user-active-keys'
              and r.account == 'prod' and r.region == 'us-east-1')
    assert [u['UserName'] for u in x1.resources] == ['deploy-bot']
    assert x1.path == 's3://org-output/org/prod/us-east-1/x1-quarantined-user-active-keys/2026/11/28/13'
    assert x1.action_results == [] and next(
        r for r in runs if r.policy == 'x1-deactivate-quarantined-keys' and r.account == 'prod'
        and r.region == 'us-east-1').action_results[0]['status'] == 'done'
    doc = document.build(runs, sources=['s3://org-output/org'])
    assert doc['summary']['findings'] == 5 and doc['summary']['runs']['errored'] == 2


def test_s3_bad_input_is_one_line(aws):
    aws.client('s3').create_bucket(Bucket='empty-output')
    aws.client('s3').put_object(Bucket='empty-output', Key='notes/readme.txt', Body=b'x')
    for url, needle in (('s3://empty-output/sweep', 'nothing under this prefix'),
                        ('s3://empty-output/notes', 'no Custodian output here'),
                        ('s3://no-such-bucket/x', 'S3 refused (NoSuchBucket')):
        with pytest.raises(ReportInputError) as e:
            load_runs([url])
        assert needle in str(e.value) and '\n' not in str(e.value)
