"""X4 console passwords of the users you keep, in-process against the emulator."""
import json
import os

import pytest
from c7n.exceptions import PolicyExecutionError

from tests.support import fast_client, inject_faults, load_policy, policy_vars, run_policy

RESET = load_policy('respond/x4.yml', 'x4-require-password-reset')
REMOVE_CONSOLE = load_policy('respond/x4.yml', 'x4-remove-console-access')


def users(iam):
    return {u['UserName'] for u in iam.list_users()['Users']}


def results(out, policy, action):
    with open(os.path.join(out, policy, f'action-results-{action}.json')) as fh:
        return {r['resource_id']: r for r in json.load(fh)}


def test_passwords_reset_for_kept_users_and_removed_for_the_others(aws, tmp_path, monkeypatch):
    iam = fast_client(aws, 'iam')
    for name in ('alice', 'bob', 'eve', 'mallory'):
        iam.create_user(UserName=name)
    for name in ('alice', 'eve'):
        iam.create_login_profile(UserName=name, Password='Old-Password-1!')
    known = policy_vars(known_users=['alice', 'bob'])
    seen = inject_faults(monkeypatch)

    found = run_policy(RESET, known, account=aws, output_dir=str(tmp_path))
    assert [r['UserName'] for r in found] == ['alice']
    assert iam.get_login_profile(UserName='alice')['LoginProfile']['PasswordResetRequired'] is True
    [update] = [p for op, p in seen if op == 'UpdateLoginProfile']
    assert update['UserName'] == 'alice' and len(update['Password']) >= 32
    assert update['Password'] != 'Old-Password-1!'
    assert results(str(tmp_path), 'x4-require-password-reset', 'require-password-reset')['alice'][
        'randomized'] is True

    found = run_policy(REMOVE_CONSOLE, known, account=aws, output_dir=str(tmp_path))
    assert [r['UserName'] for r in found] == ['eve']
    with pytest.raises(iam.exceptions.NoSuchEntityException):
        iam.get_login_profile(UserName='eve')
    assert iam.get_login_profile(UserName='alice')  # kept users keep console access
    res = results(str(tmp_path), 'x4-remove-console-access', 'remove-console-access')['eve']
    assert res['status'] == 'done' and res['login_profile']['UserName'] == 'eve'

    iam.create_login_profile(UserName='mallory', Password='Old-Password-1!')
    with pytest.raises(PolicyExecutionError, match='known_users is empty'):
        run_policy(REMOVE_CONSOLE, policy_vars(known_users=[]), account=aws,
                   output_dir=str(tmp_path / 'e'))
    assert iam.get_login_profile(UserName='mallory') and iam.get_login_profile(UserName='alice')
