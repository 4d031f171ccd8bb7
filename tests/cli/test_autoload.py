"""The stock console scripts load the pack through the installed .pth, and nothing else does.

These run the real `custodian` and `c7n-org` scripts of the venv in a
subprocess against the moto server process.
"""
import json
import os
import subprocess
import sys

import pytest
import yaml

from tests.support import POLICIES, policy_vars, quarantine_user, run_cli, write_vars

pytestmark = pytest.mark.e2e

PACK_POLICY = {'policies': [{
    'name': 'quarantined-users',
    'resource': 'aws.iam-user',
    'filters': [{'type': 'quarantine-marker'}],
}]}


def test_custodian_validate_accepts_pack_filter_and_folders(tmp_path):
    path = tmp_path / 'p.yml'
    path.write_text(yaml.safe_dump(PACK_POLICY))
    env = dict(os.environ, CUSTODIAN_EXT_AUTOLOAD='')
    run_cli(['custodian', 'validate', str(path)], env, check=0)
    proc = run_cli(['custodian', 'validate', os.path.join(POLICIES, 'detect')], env, check=0)
    assert 'Configuration valid' in proc.stderr


def test_without_the_pth_gate_the_filter_is_unknown(tmp_path):
    """Proves the .pth is what loads the pack: switched off, c7n rejects the filter."""
    path = tmp_path / 'p.yml'
    path.write_text(yaml.safe_dump(PACK_POLICY))
    proc = run_cli(['custodian', 'validate', str(path)],
                   dict(os.environ, CUSTODIAN_EXT_AUTOLOAD='0'), check=1)
    assert 'quarantine-marker' in proc.stderr


def test_unrelated_python_programs_do_not_import_the_pack():
    code = ("import sys; print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] "
            "in ('c7n', 'custodian_ext', 'c7n_org', 'boto3'))))")
    env = {k: v for k, v in os.environ.items() if k != 'CUSTODIAN_EXT_AUTOLOAD'}
    out = subprocess.run([sys.executable, '-c', 'import json; ' + code], env=env,
                         capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == []


def test_custodian_run_executes_pack_filter(account, tmp_path):
    quarantine_user(account)
    account.client('iam').create_user(UserName='bystander')
    path = tmp_path / 'p.yml'
    path.write_text(yaml.safe_dump(PACK_POLICY))
    run_cli(['custodian', 'run', '-s', str(tmp_path / 'out'), '--cache-period', '0',
             str(path), '-r', 'us-east-1'], account.env, check=0)
    with open(tmp_path / 'out' / 'quarantined-users' / 'resources.json') as fh:
        found = json.load(fh)
    assert [u['UserName'] for u in found] == ['leaky']
    assert found[0]['c7n:quarantine-markers'][0]['PolicyName'] == 'AWSCompromisedKeyQuarantineV3'


def test_c7n_org_workers_run_pack_filters(emulator, account, tmp_path):
    """c7n-org assumes each account's role and runs the pack's policy file in its worker
    processes."""
    quarantine_user(account)
    account.client('iam').create_user(UserName='bystander')
    accounts = {'vars': policy_vars(), 'accounts': [{
        'name': 'prod', 'account_id': account.id,
        'role': f'arn:aws:iam::{account.id}:role/OrganizationAccountAccessRole',
        'regions': ['us-east-1', 'us-west-2']}]}
    cfg = tmp_path / 'accounts.yml'
    cfg.write_text(yaml.safe_dump(accounts))
    out = tmp_path / 'out'
    env = emulator.env()  # the base credentials; c7n-org assumes the account's role
    env['C7N_ORG_PARALLEL'] = '2'
    proc = run_cli(['c7n-org', 'run', '-c', str(cfg), '-s', str(out), '--cache-period', '0',
                    '-u', os.path.join(POLICIES, 'detect', 'x1.yml')], env, check=0)
    path = out / 'prod' / 'us-east-1' / 'x1-quarantined-user-active-keys' / 'resources.json'
    with open(path) as fh:
        assert [u['UserName'] for u in json.load(fh)] == ['leaky'], proc.stderr
    # global policy: skipped on purpose outside global_region, and says so
    skipped = out / 'prod' / 'us-west-2' / 'x1-quarantined-user-active-keys' / 'skipped.json'
    assert skipped.exists()


def test_custodian_run_with_date_setting_in_a_stock_value_filter(account, tmp_path):
    """c7n validates policies before substituting variables; the pack makes that pass."""
    from custodian_ext_dev.demo.story import incident_boundary
    iam = account.client('iam')
    iam.create_user(UserName='before')
    start = incident_boundary()
    iam.create_user(UserName='after')
    path = tmp_path / 'p.yml'
    path.write_text(yaml.safe_dump({'policies': [{
        'name': 'new-users', 'resource': 'aws.iam-user',
        'filters': [{'type': 'value', 'key': 'CreateDate', 'value_type': 'date',
                     'op': 'gte', 'value': '{incident_start}'}]}]}))
    vars_file = write_vars(tmp_path / 'vars.yml', policy_vars(incident_start=start))
    run_cli(['custodian', 'run', '-s', str(tmp_path / 'out'), '--cache-period', '0',
             '--vars-file', vars_file, str(path), '-r', 'us-east-1'], account.env, check=0)
    with open(tmp_path / 'out' / 'new-users' / 'resources.json') as fh:
        assert [u['UserName'] for u in json.load(fh)] == ['after']
