"""Findings checked only in part (custodian_ext/incomplete.py) are problems in the report.

An output folder written as `custodian run` writes it, with a finding whose
filter could not read part of what it needs (``c7n:incomplete``): the run keeps
its findings, is listed among the problems with what could not be read, and the
gate exits 2 whatever --fail-on says. Which filters mark findings so, and that a
denied read shows up this way end to end, is tested in
tests/cli/test_missing_permissions.py.
"""
import json

from custodian_ext import incomplete
from custodian_ext.report import document, load_runs

DENIED = ('trail bucket logs-1: could not read the bucket (AccessDenied: User: arn:aws:sts::'
          '123456789012:assumed-role/audit/s is not authorized to perform: '
          's3:GetBucketLocation because no identity-based policy allows the '
          's3:GetBucketLocation action)')


def write_run(root, name, resources):
    folder = root / name
    folder.mkdir(parents=True)
    (folder / 'metadata.json').write_text(json.dumps({
        'policy': {'name': name, 'resource': 'aws.cloudtrail',
                   'metadata': {'runbook': 'R2.1', 'severity': 'low'}},
        'config': {'region': 'us-east-1', 'account_id': '123456789012'},
        'execution': {'duration': 0.1}, 'metrics': []}))
    (folder / 'resources.json').write_text(json.dumps(resources))


def test_mark_keeps_each_gap_once():
    r = {}
    incomplete.mark(r, 'a')
    incomplete.mark(r, 'a')
    incomplete.mark(r, 'b')
    assert r[incomplete.KEY] == ['a', 'b']
    assert incomplete.reasons([r, {incomplete.KEY: ['b', 'c']}, {}]) == ['a', 'b', 'c']


def test_a_run_with_incomplete_findings_is_a_problem_and_fails_the_gate(tmp_path):
    trail = {'Name': 'org', 'TrailARN': 'arn:aws:cloudtrail:us-east-1:123456789012:trail/org'}
    write_run(tmp_path, 'r2-1-trail-bucket-expires-logs',
              [incomplete.mark(dict(trail), DENIED)])
    write_run(tmp_path, 'r2-1-trail-not-logging', [dict(trail)])
    runs = {r.policy: r for r in load_runs([str(tmp_path)])}
    partial = runs['r2-1-trail-bucket-expires-logs']
    assert partial.status == 'findings' and partial.incomplete == [DENIED]
    assert partial.error == 'incomplete: ' + DENIED
    assert runs['r2-1-trail-not-logging'].incomplete == []
    doc = document.build(list(runs.values()), fail_on='critical', sources=[str(tmp_path)])
    assert [p['policy'] for p in doc['problems']] == ['r2-1-trail-bucket-expires-logs']
    assert 's3:GetBucketLocation' in doc['problems'][0]['error']
    assert doc['gate']['exit_code'] == document.EXIT_ERRORED
    assert 'checked only in part (1)' in doc['gate']['message']
    assert len(doc['findings']) == 2  # the findings are kept
