"""Bad input to the console scripts: one clear line, or a clearly marked partial result.

Issue #15, item 4, through the real ``custodian-ext``, ``custodian`` and
``c7n-org`` against the emulator: a future ``incident_start`` (a year typo,
local time taken for UTC); one older than CloudTrail's 90 days of event
history (passes, and every CloudTrail-history check says what it could not
check); a policy file with a misspelt filter; a report folder that mixes two
runs. The region, duplicate-account and c7n-org policy-file checks run from the
pack's patches (custodian_ext/patches: custodian_cli.checked_run, c7n_org.checked_init);
tests/inprocess/test_bad_input.py tests the checks directly.
"""
import datetime
import json
import os
import shutil

import pytest
import yaml

from custodian_ext_dev.demo import story
from custodian_ext_dev.emulator import client_env
from tests.support import POLICIES, REPO, run_cli, write_vars

pytestmark = pytest.mark.e2e

NOW = datetime.datetime.now(datetime.timezone.utc)


def iso(dt):
    return dt.strftime('%Y-%m-%dT%H:%M:%SZ')


def lines(text):
    return [ln for ln in text.splitlines() if ln.strip()]


def history_policies():
    """(file, name) of every detect policy that reads CloudTrail event history."""
    out = []
    for f in sorted(os.listdir(os.path.join(POLICIES, 'detect'))):
        with open(os.path.join(POLICIES, 'detect', f)) as fh:
            for p in yaml.safe_load(fh)['policies']:
                if 'cloudtrail-events' in json.dumps(p.get('filters')):
                    out.append((f, p['name']))
    return out


@pytest.mark.parametrize('start', [
    iso(NOW.replace(year=NOW.year + 1)),              # the year typed wrong
    iso(NOW + datetime.timedelta(hours=3)),           # UTC+3 local time written as UTC
], ids=['next-year', 'local-time-as-utc'])  # ids fixed: xdist workers collect at other times
def test_future_incident_start_stops_check_vars_and_every_run(account, tmp_path, start):
    vars_file = write_vars(tmp_path / 'vars.yml', story.demo_vars(start))
    proc = run_cli(['custodian-ext', 'check-vars', vars_file], account.env)
    assert proc.returncode == 1
    [line] = lines(proc.stderr)
    assert line.startswith(f'custodian-ext: error: {vars_file}: incident_start: {start} is ')
    assert 'in the future' in line
    out = tmp_path / 'out'
    proc = run_cli(['custodian', 'run', '-s', str(out), '--vars-file', vars_file,
                    os.path.join(POLICIES, 'detect', 'x6.yml'), '-r', 'us-east-1'], account.env)
    assert proc.returncode == 1 and not out.exists()
    [line] = lines(proc.stderr)
    assert line.startswith('custodian: error: ') and 'incident_start' in line
    accounts = tmp_path / 'accounts.yml'
    accounts.write_text(yaml.safe_dump({'vars': story.demo_vars(start), 'accounts': [
        {'name': 'prod', 'account_id': account.id,
         'role': f'arn:aws:iam::{account.id}:role/OrganizationAccountAccessRole'}]}))
    bundle = tmp_path / 'detect.yml'
    run_cli(['custodian-ext', 'bundle', os.path.join(POLICIES, 'detect'), '-o', str(bundle)],
            account.env, check=0)
    proc = run_cli(['c7n-org', 'run', '-c', str(accounts), '-u', str(bundle), '-s',
                    str(tmp_path / 'org'), '-r', 'us-east-1'], account.env)
    assert proc.returncode == 1
    [line] = lines(proc.stderr)
    assert line.startswith('c7n-org: error: ') and 'incident_start' in line


def test_incident_start_older_than_cloudtrail_history_is_a_partial_result(account, tmp_path):
    start = iso(NOW - datetime.timedelta(days=120))
    # a user and a role for the per-user and per-role history checks to look at
    iam = account.client('iam')
    iam.create_user(UserName='alice')
    iam.create_role(RoleName='app-role', AssumeRolePolicyDocument=story.EC2_TRUST)
    # and an instance in each region for the user-data check (c7n runs no filter over none)
    from custodian_ext_dev.emulator import AMI_X86
    for region in ('us-east-1', 'eu-north-1'):
        account.client('ec2', region).run_instances(ImageId=AMI_X86, MinCount=1, MaxCount=1,
                                                    InstanceType='t3.micro')
    vars_file = write_vars(tmp_path / 'vars.yml', story.demo_vars(start))
    run_cli(['custodian-ext', 'check-vars', vars_file], account.env, check=0)
    files = sorted({os.path.join(POLICIES, 'detect', f) for f, _ in history_policies()})
    out = tmp_path / 'out'
    run_cli(['custodian', 'run', '-s', str(out), '--cache-period', '0', '--vars-file',
             vars_file] + files + ['-r', 'us-east-1', '-r', 'eu-north-1'], account.env, check=0)
    proc = run_cli(['custodian-ext', 'report', str(out), '--format', 'json', '-o', '-'],
                   account.env, check=0)
    doc = json.loads(proc.stdout)
    history = {name for _, name in history_policies()}
    ran = [r for r in doc['runs'] if r['policy'] in history and r['status'] != 'skipped']
    assert len({r['policy'] for r in ran}) == len(history) >= 9, sorted(history)
    for r in ran:
        assert r['status'] in ('clean', 'findings'), r
        assert any('CloudTrail keeps 90 days of event history' in n and 'cannot be checked' in n
                   for n in r['partial']), r
    assert {(r['policy'], r['region']) for r in doc['partial']} == {
        (r['policy'], r['region']) for r in ran}
    assert doc['summary']['runs']['partial'] == len(ran)
    assert 'partial' in doc['gate']['message']
    md = run_cli(['custodian-ext', 'report', str(out), '--format', 'md', '-o', '-'],
                 account.env, check=0).stdout
    assert '## Partial checks: what they could not check' in md
    assert f"events from {start} to " in md


def test_misspelt_filter_is_custodians_one_line(account, tmp_path):
    with open(os.path.join(POLICIES, 'detect', 'x1.yml')) as fh:
        data = yaml.safe_load(fh)
    data['policies'][0]['filters'][0] = {'type': 'quarantine-markr'}
    typo = tmp_path / 'x1.yml'
    typo.write_text(yaml.safe_dump(data))
    vars_file = write_vars(tmp_path / 'vars.yml', story.demo_vars(iso(NOW)))
    for cmd in (['custodian', 'run', '-s', str(tmp_path / 'out'), '--vars-file', vars_file,
                 str(typo)],
                ['custodian', 'validate', str(typo)]):
        proc = run_cli(cmd, account.env)
        assert proc.returncode == 1, cmd
        assert 'Traceback' not in proc.stderr
        assert "Invalid filter type {'type': 'quarantine-markr'}" in proc.stderr
        assert len(lines(proc.stderr)) <= 2, proc.stderr
    # c7n-org run does not check the -u file (it exits 0 having run nothing): the pack's
    # custodian_ext.policyfiles.check_policies, tested in tests/inprocess/test_bad_input.py


def test_report_refuses_a_folder_that_mixes_two_runs(tmp_path):
    src = tmp_path / 'org'
    shutil.copytree(os.path.join(REPO, 'tests', 'data', 'report', 'org'), src)
    meta_path = src / 'dev' / 'us-east-1' / 'x1-quarantined-user-active-keys' / 'metadata.json'
    meta = json.loads(meta_path.read_text())
    meta['execution']['start'] -= 3 * 86400
    meta['execution']['end_time'] -= 3 * 86400
    meta_path.write_text(json.dumps(meta))
    env = client_env('http://127.0.0.1:9')
    proc = run_cli(['custodian-ext', 'report', str(src)], env)
    assert proc.returncode == 2 and proc.stdout == ''
    [line] = lines(proc.stderr)
    assert line.startswith(f'custodian-ext: error: {src}: mixes more than one run, not merged: ')
    proc = run_cli(['custodian-ext', 'report', str(src), '--allow-mixed'], env)
    assert proc.returncode == 2  # the fixture has errored runs: exit 2 from the gate
    assert 'custodian-ext: warning: ' in proc.stderr and 'Result: ERROR' in proc.stdout


# -- checks the pack's patches make before a run of its policies (custodian_ext/patches) --

def test_regions_that_do_not_exist_or_are_not_enabled_are_one_line(account, tmp_path):
    vars_file = write_vars(tmp_path / 'vars.yml', story.demo_vars(iso(NOW)))
    for region, needle in (('xx-fake-1', '-r xx-fake-1: not an AWS region'),
                           ('ap-east-1', f'-r ap-east-1: not enabled in account {account.id}')):
        out = tmp_path / region
        proc = run_cli(['custodian', 'run', '-s', str(out), '--vars-file', vars_file,
                        os.path.join(POLICIES, 'detect', 'x6.yml'), '-r', 'us-east-1',
                        '-r', region], account.env)
        assert proc.returncode == 1 and not out.exists()
        [line] = lines(proc.stderr)
        assert line.startswith(f'custodian: error: {needle}')


def test_c7n_org_duplicate_accounts_and_a_misspelt_filter_are_one_line(account, tmp_path):
    role = f'arn:aws:iam::{account.id}:role/OrganizationAccountAccessRole'
    with open(os.path.join(POLICIES, 'detect', 'x1.yml')) as fh:
        data = yaml.safe_load(fh)
    good = tmp_path / 'x1.yml'
    good.write_text(yaml.safe_dump(data))
    data['policies'][0]['filters'][0] = {'type': 'quarantine-markr'}
    typo = tmp_path / 'typo.yml'
    typo.write_text(yaml.safe_dump(data))
    for accounts, use, needle in (
            ([{'name': 'prod', 'account_id': account.id, 'role': role},
              {'name': 'prod-2', 'account_id': account.id, 'role': role}], good,
             f"have the same account id '{account.id}'"),
            ([{'name': 'prod', 'account_id': account.id, 'role': role}], typo,
             "Invalid filter type {'type': 'quarantine-markr'}")):
        path = tmp_path / 'accounts.yml'
        path.write_text(yaml.safe_dump({'vars': story.demo_vars(iso(NOW)), 'accounts': accounts}))
        proc = run_cli(['c7n-org', 'run', '-c', str(path), '-u', str(use), '-s',
                        str(tmp_path / 'org'), '-r', 'us-east-1'], account.env)
        assert proc.returncode == 1 and 'Traceback' not in proc.stderr
        [line] = lines(proc.stderr)
        assert line.startswith('c7n-org: error: ') and needle in line
