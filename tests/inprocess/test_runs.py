"""custodian_ext.runs in-process: expected c7n-org runs, their classification, c7n-org's log.

The output folders are laid out as c7n-org writes them (metadata.json,
resources.json, custodian-run.log per policy); the end-to-end tests in
tests/cli/test_org.py produce the same from real c7n-org runs.
"""
import json

import yaml

from custodian_ext import runs
from custodian_ext.cli import main
from custodian_ext.report.loader import load_runs

POLICY = {'name': 'x6-stopped-instances', 'resource': 'aws.ec2',
          'metadata': {'runbook': 'X6', 'severity': 'medium'}}
LAMBDA = {'name': 'x6-lambda', 'resource': 'aws.ec2',
          'mode': {'type': 'periodic', 'schedule': 'rate(1 day)', 'role': 'R'}}


def write_run(out, account, region, policy, resources=None, exception=False, log=''):
    path = out / account / region / policy['name']
    path.mkdir(parents=True)
    metrics = [{'MetricName': 'PolicyException', 'Value': 1}] if exception else []
    account_id = {'dev': '222222222222'}.get(account, '111111111111')  # as in setup()
    (path / 'metadata.json').write_text(json.dumps(
        {'policy': policy, 'config': {'region': region, 'account_id': account_id},
         'metrics': metrics}))
    if resources is not None:
        (path / 'resources.json').write_text(json.dumps(resources))
    (path / 'custodian-run.log').write_text(log)


def setup(tmp_path):
    accounts = tmp_path / 'accounts.yml'
    accounts.write_text(yaml.safe_dump({'accounts': [
        {'name': 'prod', 'account_id': '111111111111', 'role': 'Audit',
         'regions': ['eu-west-1']},
        {'name': 'dev', 'account_id': '222222222222', 'role': 'Audit'}]}))
    use = tmp_path / 'detect.yml'
    use.write_text(yaml.safe_dump({'policies': [POLICY, LAMBDA]}))
    out = tmp_path / 'out'
    write_run(out, 'prod', 'eu-west-1', POLICY, resources=[])
    write_run(out, 'prod', 'eu-west-1', LAMBDA)  # provisioned: metadata, no resources
    write_run(out, 'dev', 'us-east-1', POLICY, exception=True,
              log='2026-11-28 custodian.policy:ERROR botocore.exceptions.ClientError: '
                  'An error occurred (UnauthorizedOperation) when calling DescribeInstances\n')
    write_run(out, 'dev', 'us-east-1', LAMBDA, exception=True)
    log = tmp_path / 'c7n-org.log'
    log.write_text(
        '2026-11-28 13:11:49,610: c7n_org:WARNING Access denied api:AssumeRole '
        'policy:x6-stopped-instances account:dev region:us-west-2\n'
        '2026-11-28 13:11:50,000: c7n_org:WARNING Error running policy in dev @ us-east-1 '
        'exception: boom\n')
    return accounts, use, out, log


def test_each_account_region_and_policy_is_classified(tmp_path):
    accounts, use, out, log = setup(tmp_path)
    check = runs.check_output(str(out), runs.load_accounts(str(accounts)),
                              runs.load_policies(str(use)), (), str(log))
    # prod: its own region list; dev: c7n-org's default us-east-1 and us-west-2
    assert check.expected == 6
    assert {k: v for k, v in check.counts.items() if v} == {
        'clean': 1, 'deployed': 1, 'errored': 2, 'missing': 2}
    by_place = {(f.account, f.region): f for f in check.failures}
    assert set(by_place) == {('dev', 'us-east-1'), ('dev', 'us-west-2')}
    east = by_place[('dev', 'us-east-1')]
    assert [p for p, _ in east.errored] == ['x6-stopped-instances', 'x6-lambda']
    assert 'UnauthorizedOperation' in east.errored[0][1]
    assert east.reasons == ['boom']
    west = by_place[('dev', 'us-west-2')]
    assert west.missing == ['x6-stopped-instances', 'x6-lambda']
    assert west.line() == (
        'FAILED dev (222222222222) us-west-2: 2 policies never ran (x6-stopped-instances, '
        'x6-lambda); c7n-org log: access denied calling AssumeRole (policy '
        'x6-stopped-instances)')


def test_cli_exit_codes_and_marked_runs(tmp_path, capsys):
    accounts, use, out, log = setup(tmp_path)
    args = ['org-check', '-c', str(accounts), '-u', str(use), '-s', str(out), '--log', str(log)]
    assert main(args + ['-a', 'prod']) == 0
    assert 'every expected run completed' in capsys.readouterr().out
    assert main(args + ['--mark-missing']) == 2
    marked = [r for r in load_runs([str(out)]) if (r.account, r.region) == ('dev', 'us-west-2')]
    assert {r.policy for r in marked} == {'x6-stopped-instances', 'x6-lambda'}
    assert all(r.status == 'errored' and 'AssumeRole' in r.error for r in marked)


def test_bad_input_is_one_line(tmp_path, capsys):
    accounts, use, out, _ = setup(tmp_path)
    assert main(['org-check', '-c', str(tmp_path / 'nope.yml'), '-u', str(use), '-s',
                 str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(
        f"custodian-ext: error: accounts file {tmp_path / 'nope.yml'} not found")
    # S3 output is read (tests/cli/test_shards.py); other schemes are not
    assert main(['org-check', '-c', str(accounts), '-u', str(use), '-s',
                 'gs://bucket/out']) == 1
    assert 'reads a local folder or s3://bucket/prefix' in capsys.readouterr().err
