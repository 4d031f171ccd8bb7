"""CI: the example workflows run the README's Makefile targets, and those targets gate correctly.

`make audit` runs here for real (the stock `custodian run`, then
`custodian-ext report --fail-on`) against the moto server process; `make
org-audit` is exercised in tests/cli/test_org.py on the emulated
organization. GNU make exits 2 whenever a recipe fails, so the report's own
exit code (0 pass, 1 findings at or above FAIL_ON, 2 errored) is read from
report.json's gate.
"""
import json
import os
import re
import shlex
import subprocess

import pytest
import yaml

from custodian_ext_dev.emulator import AMI_X86
from tests.support import REPO, policy_vars, write_vars

pytestmark = pytest.mark.e2e

EXAMPLES = os.path.join(REPO, 'examples', 'ci')
MAKEFILE = open(os.path.join(REPO, 'Makefile')).read()
README = open(os.path.join(REPO, 'README.md')).read()


def _github_commands():
    with open(os.path.join(EXAMPLES, 'github-actions.yml')) as fh:
        wf = yaml.safe_load(fh)
    return wf, [(job, step['run']) for job, j in wf['jobs'].items() for step in j['steps']
                if 'run' in step]


def _gitlab_commands():
    with open(os.path.join(EXAMPLES, 'gitlab-ci.yml')) as fh:
        ci = yaml.safe_load(fh)
    job = ci['compromise-audit']
    return ci, job['script']


def _make_targets():
    return set(re.findall(r'^([a-z][\w-]*):', MAKEFILE, re.M))


def _check_make_command(cmd):
    parts = shlex.split(cmd)
    assert parts[0] == 'make', f'CI runs the Makefile targets only, not {cmd!r}'
    target = parts[1]
    assert target in _make_targets(), target
    assert f'make {target}' in README, f'README does not document make {target}'
    for assignment in parts[2:]:
        name = assignment.split('=', 1)[0]
        if '=' in assignment:
            assert re.search(rf'^{name}\s+\?=', MAKEFILE, re.M), f'{name} is not a Makefile setting'
    return target


def test_github_workflow_uses_oidc_the_make_targets_and_keeps_the_output():
    wf, commands = _github_commands()
    assert wf['permissions']['id-token'] == 'write'
    targets = {job: _check_make_command(cmd) for job, cmd in commands}
    assert targets == {'audit': 'audit', 'org-audit': 'org-audit'}
    assert all('FAIL_ON=high' in cmd for _, cmd in commands)
    for job in wf['jobs'].values():
        uses = {s.get('uses', '').split('@')[0]: s for s in job['steps']}
        assert uses['aws-actions/configure-aws-credentials']['with']['role-to-assume']
        upload = uses['actions/upload-artifact']
        assert upload['if'] == 'always()' and upload['with']['path'] == 'out/'


def test_gitlab_job_uses_oidc_the_make_target_and_publishes_junit():
    ci, script = _gitlab_commands()
    job = ci['compromise-audit']
    assert job['id_tokens']['AWS_ID_TOKEN']['aud'] == 'sts.amazonaws.com'
    assert [_check_make_command(c) for c in script] == ['audit']
    assert 'FAIL_ON=high' in script[0]
    assert job['artifacts']['when'] == 'always' and 'out/' in job['artifacts']['paths']
    # the JUnit file is where `make audit` writes it
    report_dir = re.search(r'^REPORT\s+\?=\s*(\S+)', MAKEFILE, re.M).group(1)
    assert job['artifacts']['reports']['junit'] == f'{report_dir}/report.junit.xml'


def make(target, account, tmp_path, **settings):
    """`make <target>` in the repository, on the emulated account; the venv is already built."""
    out, report = tmp_path / 'out', tmp_path / 'report'
    args = ['make', '-s', '-o', '.venv/.installed', target, f'OUT={out}', f'REPORT={report}']
    args += [f'{k}={v}' for k, v in settings.items()]
    proc = subprocess.run(args, cwd=REPO, env=account.env, capture_output=True, text=True,
                          timeout=300)
    gate = None
    if (report / 'report.json').exists():
        gate = json.loads((report / 'report.json').read_text())['gate']
    return proc, gate, report


def test_make_audit_gates_on_the_configured_severity(account, tmp_path):
    # R3.3 (high): an instance in a region the account does not use
    account.client('ec2', 'eu-north-1').run_instances(ImageId=AMI_X86, MinCount=1, MaxCount=1)
    common = dict(VARS=write_vars(tmp_path / 'vars.yml', policy_vars()),
                  REGIONS='us-east-1 eu-north-1')
    proc, gate, report = make('audit', account, tmp_path, **common)
    assert gate['fail_on'] == 'high'  # the Makefile's default
    assert proc.returncode != 0 and gate['exit_code'] == 1, proc.stdout + proc.stderr[-2000:]
    assert gate['findings_at_or_above'] >= 1
    findings = json.loads((report / 'report.json').read_text())['findings']
    assert any(f['policy'] == 'r3-3-ec2-outside-allowed-regions' and f['region'] == 'eu-north-1'
               for f in findings)
    assert {p.name for p in report.iterdir()} == {'report.md', 'report.json', 'report.junit.xml'}
    proc, gate, _ = make('audit', account, tmp_path, FAIL_ON='critical', **common)
    assert proc.returncode == 0 and gate['exit_code'] == 0, proc.stdout + proc.stderr[-2000:]


def test_make_audit_fails_on_a_policy_error(account, tmp_path):
    """A policy whose action fails (the Lambda function it invokes does not exist) is an error."""
    detect = tmp_path / 'detect'
    detect.mkdir()
    (detect / 'x9-probe.yml').write_text(yaml.safe_dump({'policies': [{
        'name': 'x9-probe', 'resource': 'aws.account', 'description': 'probe',
        'metadata': {'runbook': 'X9', 'severity': 'low', 'remediation': 'none'},
        'actions': [{'type': 'invoke-lambda', 'function': 'pack-test-no-such-function'}]}]}))
    vars_file = write_vars(tmp_path / 'vars.yml', policy_vars())
    proc, gate, _ = make('audit', account, tmp_path, FAIL_ON='critical', VARS=vars_file,
                         DETECT=str(detect), REGIONS='us-east-1')
    assert proc.returncode != 0 and gate['exit_code'] == 2, proc.stdout + proc.stderr[-2000:]
