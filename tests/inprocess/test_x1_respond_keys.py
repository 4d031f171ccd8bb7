"""X1 staged key rotation, in-process against the emulator.

Custodian issues #842 and #5583 (``remove-keys`` acting on every key of a
user) are the failure these tests exist for: only matched keys change.
"""
import datetime
import json
import os

import pytest
from c7n.exceptions import PolicyExecutionError, PolicyValidationError

from custodian_ext.filters.rotation import DELETABLE_TAG, RECORD_TAG, format_record, parse_record
from tests.support import (
    client_error, fast_client, inject_faults, load_policy, policy_vars, run_policy)

DEACTIVATE = load_policy('respond/x1.yml', 'x1-deactivate-quarantined-keys')
DELETE = load_policy('respond/x1.yml', 'x1-delete-deactivated-keys')
QUARANTINE = 'arn:aws:iam::aws:policy/AWSCompromisedKeyQuarantineV2'
INLINE = 'AWSExposedCredentialPolicy_DO_NOT_REMOVE'
DENY = json.dumps({'Version': '2012-10-17', 'Statement': [
    {'Effect': 'Deny', 'Action': 'iam:CreateUser', 'Resource': '*'}]})


def user(iam, name, keys=1, marker=None):
    iam.create_user(UserName=name)
    ids = [iam.create_access_key(UserName=name)['AccessKey']['AccessKeyId'] for _ in range(keys)]
    if marker == 'managed':
        iam.attach_user_policy(UserName=name, PolicyArn=QUARANTINE)
    elif marker == 'inline':
        iam.put_user_policy(UserName=name, PolicyName=INLINE, PolicyDocument=DENY)
    return ids


def status(iam, name):
    return {k['AccessKeyId']: k['Status']
            for k in iam.list_access_keys(UserName=name)['AccessKeyMetadata']}


def tags(iam, name):
    return {t['Key']: t['Value'] for t in iam.list_user_tags(UserName=name)['Tags']}


def results(tmp_path, policy, action):
    with open(os.path.join(tmp_path, policy, f'action-results-{action}.json')) as fh:
        return {r['resource_id']: r for r in json.load(fh)}


def test_deactivates_flagged_keys_records_them_and_leaves_everything_else(aws, tmp_path):
    iam = fast_client(aws, 'iam')
    leaked, replacement = user(iam, 'deploy-bot', keys=2, marker='managed')
    [old] = user(iam, 'legacy-etl', marker='inline')
    bystander = user(iam, 'alice', keys=2)  # no marker: not flagged, not touched
    before = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)

    found = run_policy(DEACTIVATE, policy_vars(keep_access_keys=[replacement], key_grace_days=7),
                       account=aws, output_dir=str(tmp_path))

    assert {r['UserName'] for r in found} == {'deploy-bot', 'legacy-etl'}
    assert status(iam, 'deploy-bot') == {leaked: 'Inactive', replacement: 'Active'}
    assert status(iam, 'legacy-etl') == {old: 'Inactive'}
    assert set(status(iam, 'alice').values()) == {'Active'}
    assert set(status(iam, 'alice')) == set(bystander)
    # The quarantine markers stay where AWS put them.
    attached = iam.list_attached_user_policies(UserName='deploy-bot')['AttachedPolicies']
    assert [p['PolicyArn'] for p in attached] == [QUARANTINE]
    assert iam.list_user_policies(UserName='legacy-etl')['PolicyNames'] == [INLINE]
    # The record: exactly the deactivated key, with when, and when it may go.
    t = tags(iam, 'deploy-bot')
    record = parse_record(t[RECORD_TAG])
    assert list(record) == [leaked] and record[leaked] >= before
    deletable = datetime.datetime.strptime(t[DELETABLE_TAG], '%Y-%m-%dT%H:%M:%SZ').replace(
        tzinfo=datetime.timezone.utc)
    assert deletable == record[leaked] + datetime.timedelta(days=7)
    assert t['custodian-ext:incident'] == 'incident'
    assert tags(iam, 'alice') == {}
    res = results(tmp_path, 'x1-deactivate-quarantined-keys', 'deactivate-access-keys')
    assert res['deploy-bot']['status'] == 'done'
    assert res['deploy-bot']['deactivated'] == [leaked]
    assert res['deploy-bot']['kept'] == [replacement]
    assert res['legacy-etl']['deactivated'] == [old]


def test_a_users_unmatched_keys_stay_active(aws, tmp_path):
    """#842 / #5583: the filter matches one of two active keys; only that one changes."""
    iam = fast_client(aws, 'iam')
    target, other = user(iam, 'svc', keys=2, marker='managed')
    policy = dict(DEACTIVATE, filters=[
        {'type': 'quarantine-marker'},
        {'type': 'access-key', 'key': 'AccessKeyId', 'value': target}])
    run_policy(policy, policy_vars(), account=aws, output_dir=str(tmp_path))
    assert status(iam, 'svc') == {target: 'Inactive', other: 'Active'}
    res = results(tmp_path, 'x1-deactivate-quarantined-keys', 'deactivate-access-keys')['svc']
    assert res['deactivated'] == [target] and res['untouched'] == [other]
    assert list(parse_record(tags(iam, 'svc')[RECORD_TAG])) == [target]


def test_refuses_a_policy_without_a_key_filter(aws):
    policy = dict(DEACTIVATE, filters=[{'type': 'quarantine-marker'}])
    with pytest.raises(PolicyValidationError, match='acts only on the keys a filter matched'):
        run_policy(policy, policy_vars(), account=aws)
    policy = dict(DELETE, filters=[{'type': 'access-key', 'key': 'Status', 'value': 'Inactive'}])
    with pytest.raises(PolicyValidationError, match='needs the deactivated-keys filter'):
        run_policy(policy, policy_vars(), account=aws)


def _record(iam, name, **ages):
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    iam.tag_user(UserName=name, Tags=[{'Key': RECORD_TAG, 'Value': format_record(
        {k: now - datetime.timedelta(days=d) for k, d in ages.items()})}])


def test_deletes_only_inactive_keys_the_pack_deactivated_past_the_grace_period(aws, tmp_path):
    iam = fast_client(aws, 'iam')
    [due] = user(iam, 'due')
    iam.update_access_key(UserName='due', AccessKeyId=due, Status='Inactive')
    [recent] = user(iam, 'recent')
    iam.update_access_key(UserName='recent', AccessKeyId=recent, Status='Inactive')
    [reactivated] = user(iam, 'reactivated')          # recorded, but Active again
    [by_hand, also] = user(iam, 'by-hand', keys=2)    # inactive, but not the pack's doing
    iam.update_access_key(UserName='by-hand', AccessKeyId=by_hand, Status='Inactive')
    iam.update_access_key(UserName='by-hand', AccessKeyId=also, Status='Inactive')
    [kept] = user(iam, 'kept')
    iam.update_access_key(UserName='kept', AccessKeyId=kept, Status='Inactive')
    _record(iam, 'due', **{due: 10})
    _record(iam, 'recent', **{recent: 2})
    _record(iam, 'reactivated', **{reactivated: 10})
    _record(iam, 'by-hand', **{also: 10})
    _record(iam, 'kept', **{kept: 10})

    found = run_policy(DELETE, policy_vars(key_grace_days=7, keep_access_keys=[kept]),
                       account=aws, output_dir=str(tmp_path))

    assert {r['UserName'] for r in found} == {'due', 'by-hand'}
    assert status(iam, 'due') == {}
    assert status(iam, 'by-hand') == {by_hand: 'Inactive'}
    assert status(iam, 'recent') == {recent: 'Inactive'}
    assert status(iam, 'reactivated') == {reactivated: 'Active'}
    assert status(iam, 'kept') == {kept: 'Inactive'}
    assert RECORD_TAG not in tags(iam, 'due') and RECORD_TAG not in tags(iam, 'by-hand')
    res = results(tmp_path, 'x1-delete-deactivated-keys', 'delete-access-keys')
    assert [d['AccessKeyId'] for d in res['due']['deleted']] == [due]
    assert 'last_used' in res['due']['deleted'][0]


def test_delete_rechecks_the_key_just_before_deleting(aws, tmp_path, monkeypatch):
    """A key reactivated between the filter and the action is skipped, not deleted."""
    from custodian_ext.actions import keys as keys_module
    iam = fast_client(aws, 'iam')
    [key] = user(iam, 'racy')
    iam.update_access_key(UserName='racy', AccessKeyId=key, Status='Inactive')
    _record(iam, 'racy', **{key: 10})
    original = keys_module.DeleteAccessKeys.process_resource

    def reactivate_first(self, r):
        iam.update_access_key(UserName='racy', AccessKeyId=key, Status='Active')
        return original(self, r)

    monkeypatch.setattr(keys_module.DeleteAccessKeys, 'process_resource', reactivate_first)
    run_policy(DELETE, policy_vars(key_grace_days=7), account=aws, output_dir=str(tmp_path))
    assert status(iam, 'racy') == {key: 'Active'}
    res = results(tmp_path, 'x1-delete-deactivated-keys', 'delete-access-keys')['racy']
    assert res['status'] == 'skipped' and 'Active again' in res['reason']


def test_reactivation_path_then_delete_after_grace(aws, tmp_path):
    """The documented "application broke" path, then the normal end of the rotation."""
    iam = fast_client(aws, 'iam')
    leaked, app = user(iam, 'deploy-bot', keys=2, marker='managed')
    run_policy(DEACTIVATE, policy_vars(), account=aws, output_dir=str(tmp_path / '1'))
    assert status(iam, 'deploy-bot') == {leaked: 'Inactive', app: 'Inactive'}

    # The application broke: reactivate its key and list it in keep_access_keys.
    iam.update_access_key(UserName='deploy-bot', AccessKeyId=app, Status='Active')
    keep = policy_vars(keep_access_keys=[app], key_grace_days=0)
    run_policy(DEACTIVATE, keep, account=aws, output_dir=str(tmp_path / '2'))
    assert status(iam, 'deploy-bot') == {leaked: 'Inactive', app: 'Active'}
    assert list(parse_record(tags(iam, 'deploy-bot')[RECORD_TAG])) == [leaked]

    # Past the grace period (0 days here): the leaked key goes, the kept one stays.
    run_policy(DELETE, keep, account=aws, output_dir=str(tmp_path / '3'))
    assert status(iam, 'deploy-bot') == {app: 'Active'}
    assert RECORD_TAG not in tags(iam, 'deploy-bot')
    assert DELETABLE_TAG not in tags(iam, 'deploy-bot')
    attached = iam.list_attached_user_policies(UserName='deploy-bot')['AttachedPolicies']
    assert attached[0]['PolicyArn'] == QUARANTINE


def test_a_failed_deactivation_is_reported_and_fails_the_run(aws, tmp_path, monkeypatch):
    """One user's UpdateAccessKey fails (injected by wrapping the client call); the other
    user is still done, and the run raises after both."""
    iam = fast_client(aws, 'iam')
    [bad] = user(iam, 'bad', marker='managed')
    [good] = user(iam, 'good', marker='managed')

    def fail_for_bad(params, call):
        if params['AccessKeyId'] == bad:
            raise client_error('ServiceFailure', 'UpdateAccessKey')
        return call()

    inject_faults(monkeypatch, UpdateAccessKey=fail_for_bad)
    with pytest.raises(PolicyExecutionError, match='failed for 1 of 2'):
        run_policy(DEACTIVATE, policy_vars(), account=aws, output_dir=str(tmp_path))
    assert status(iam, 'good') == {good: 'Inactive'} and status(iam, 'bad') == {bad: 'Active'}
    res = results(tmp_path, 'x1-deactivate-quarantined-keys', 'deactivate-access-keys')
    assert res['bad']['status'] == 'failed' and 'ServiceFailure' in res['bad']['reason']
    assert RECORD_TAG not in tags(iam, 'bad')
