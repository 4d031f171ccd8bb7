"""Bad input to the stock `custodian run` gets one clear line and a non-zero exit, never a
traceback.

Settings errors must come before any API call: these runs point at a
loopback port where nothing listens, so any call would fail differently.
"""
import os
import socket

import pytest

from custodian_ext_dev.emulator import client_env
from tests.support import POLICIES, policy_vars, run_cli, write_vars

pytestmark = pytest.mark.e2e
DETECT = os.path.join(POLICIES, 'detect')


def dead_endpoint():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return f'http://127.0.0.1:{port}'


def run(args, env):
    home = os.environ.get('CUSTODIAN_TEST_HOME', '/tmp')
    proc = run_cli(['custodian', 'run', '-s', os.path.join(home, 'out'),
                    '--cache-period', '0'] + args, env)
    errors = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    return proc, errors


@pytest.mark.parametrize('key,value,needle', [
    ('allowed_regions', 'us-east-1', 'allowed_regions: expected a list of region names'),
    ('incident_start', 'last tuesday', "incident_start: 'last tuesday' is not an ISO-8601"),
    ('alowed_regions', ['us-east-1'],
     "unknown setting 'alowed_regions'; did you mean 'allowed_regions'"),
])
def test_malformed_vars_stop_before_any_api_call(tmp_path, key, value, needle):
    values = policy_vars()
    values[key] = value
    vars_file = write_vars(tmp_path / 'vars.yml', values)
    proc, errors = run(['--vars-file', vars_file, DETECT], client_env(dead_endpoint()))
    assert proc.returncode == 1
    assert errors == [f'custodian: error: {vars_file}: ' + errors[0].split(f'{vars_file}: ', 1)[1]]
    assert needle in errors[0]
    assert 'Traceback' not in proc.stderr


def test_missing_vars_file_names_the_setting(tmp_path):
    proc, errors = run([DETECT], client_env(dead_endpoint()))
    assert proc.returncode == 1 and len(errors) == 1
    assert "no --vars-file given (pass --vars-file policies/vars.yml)" in errors[0]
    assert "required setting 'allowed_regions' is missing" in errors[0]


def test_unreachable_endpoint_is_one_line(tmp_path):
    vars_file = write_vars(tmp_path / 'vars.yml', policy_vars())
    proc, errors = run(['--vars-file', vars_file, DETECT, '-r', 'us-east-1'],
                       client_env(dead_endpoint()))
    assert proc.returncode == 1
    assert len(errors) == 1 and errors[0].startswith('custodian: error: cannot reach AWS')


def test_missing_credentials_is_one_line(tmp_path):
    vars_file = write_vars(tmp_path / 'vars.yml', policy_vars())
    env = client_env(dead_endpoint())
    for k in ('AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN'):
        env.pop(k)
    proc, errors = run(['--vars-file', vars_file, DETECT, '-r', 'us-east-1'], env)
    assert proc.returncode == 1
    assert errors == ['custodian: error: no AWS credentials found; set AWS_PROFILE, or '
                      'AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run with an instance or '
                      'task role']


def test_region_list_without_global_region_is_refused(tmp_path):
    vars_file = write_vars(tmp_path / 'vars.yml', policy_vars())
    proc, errors = run(['--vars-file', vars_file, DETECT, '-r', 'eu-west-1'],
                       client_env(dead_endpoint()))
    assert proc.returncode == 1 and len(errors) == 1
    assert 'add -r us-east-1' in errors[0]
