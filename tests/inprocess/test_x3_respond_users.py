"""X3 unknown users (export, then Custodian's delete), in-process against the emulator.
ListServiceSpecificCredentials comes from the emulator's extension."""
import json
import os

import pytest
from c7n.exceptions import PolicyExecutionError

from tests.support import (
    client_error, fast_client, inject_faults, load_policy, policy_vars, run_policy)

DELETE_UNKNOWN = load_policy('respond/x3.yml', 'x3-delete-unknown-users')
ALLOW = json.dumps({'Version': '2012-10-17', 'Statement': [
    {'Effect': 'Allow', 'Action': '*', 'Resource': '*'}]})


def users(iam):
    return {u['UserName'] for u in iam.list_users()['Users']}


def results(out, policy, action):
    with open(os.path.join(out, policy, f'action-results-{action}.json')) as fh:
        return {r['resource_id']: r for r in json.load(fh)}


def backdoor(iam, name):
    """An attacker's admin user, with everything the export must capture."""
    iam.create_user(UserName=name, Tags=[{'Key': 'team', 'Value': 'none'}])
    iam.create_login_profile(UserName=name, Password='Attacker-Pass-1!')
    key = iam.create_access_key(UserName=name)['AccessKey']['AccessKeyId']
    iam.put_user_policy(UserName=name, PolicyName='admin', PolicyDocument=ALLOW)
    iam.attach_user_policy(UserName=name, PolicyArn='arn:aws:iam::aws:policy/AdministratorAccess')
    iam.add_user_to_group(UserName=name, GroupName='ops')
    serial = iam.create_virtual_mfa_device(
        VirtualMFADeviceName=name)['VirtualMFADevice']['SerialNumber']
    iam.enable_mfa_device(UserName=name, SerialNumber=serial, AuthenticationCode1='123456',
                          AuthenticationCode2='654321')
    return key


def test_exports_every_detail_then_deletes_only_unknown_users(aws, tmp_path):
    iam = fast_client(aws, 'iam')
    iam.create_group(GroupName='ops')
    for known in ('alice', 'deploy-bot'):
        iam.create_user(UserName=known)
    key = backdoor(iam, 'svc-backup')
    found = run_policy(DELETE_UNKNOWN, policy_vars(known_users=['alice', 'deploy-bot']),
                       account=aws, output_dir=str(tmp_path))
    assert [r['UserName'] for r in found] == ['svc-backup']
    assert users(iam) == {'alice', 'deploy-bot'}
    res = results(str(tmp_path), 'x3-delete-unknown-users', 'export-user')['svc-backup']
    assert res['status'] == 'done' and res['evidence'] == 'output:evidence-iam-user-svc-backup.json'
    with open(os.path.join(tmp_path, 'x3-delete-unknown-users',
                           'evidence-iam-user-svc-backup.json')) as fh:
        doc = json.load(fh)['document']
    assert doc['User']['UserName'] == 'svc-backup'
    assert doc['InlinePolicies']['admin']['Statement'][0]['Action'] == '*'
    assert [p['PolicyName'] for p in doc['AttachedPolicies']] == ['AdministratorAccess']
    assert [g['GroupName'] for g in doc['Groups']] == ['ops']
    assert [k['AccessKeyId'] for k in doc['AccessKeys']] == [key]
    assert 'AccessKeyLastUsed' in doc['AccessKeys'][0]
    assert doc['LoginProfile']['UserName'] == 'svc-backup'
    assert len(doc['MFADevices']) == 1
    assert doc['SigningCertificates'] == [] and doc['SSHPublicKeys'] == []
    assert doc['ServiceSpecificCredentials'] == []


def test_no_user_is_deleted_when_an_export_fails_or_known_users_is_empty(
        aws, tmp_path, monkeypatch):
    iam = fast_client(aws, 'iam')
    iam.create_group(GroupName='ops')
    iam.create_user(UserName='alice')
    backdoor(iam, 'intruder-1')
    iam.create_user(UserName='intruder-2')
    everyone = users(iam)

    with pytest.raises(PolicyExecutionError, match='known_users is empty'):
        run_policy(DELETE_UNKNOWN, policy_vars(known_users=[]), account=aws,
                   output_dir=str(tmp_path / 'empty'))
    assert users(iam) == everyone

    def fail_for_one(params, call):
        if params['UserName'] == 'intruder-1':
            raise client_error('ServiceFailure', 'ListGroupsForUser')
        return call()

    inject_faults(monkeypatch, ListGroupsForUser=fail_for_one)
    with pytest.raises(PolicyExecutionError, match='export-user failed for 1 of 2'):
        run_policy(DELETE_UNKNOWN, policy_vars(known_users=['alice']), account=aws,
                   output_dir=str(tmp_path / 'fault'))
    assert users(iam) == everyone  # Custodian's delete never ran
    res = results(str(tmp_path / 'fault'), 'x3-delete-unknown-users', 'export-user')
    assert res['intruder-1']['status'] == 'failed'
    assert 'ServiceFailure' in res['intruder-1']['reason']
    assert res['intruder-2']['status'] == 'done'
