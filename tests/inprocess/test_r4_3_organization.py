"""R4.3 organization accounts, against the emulator.

moto implements Organizations (CreateAccount, ListAccounts, DescribeOrganization).
The emulator adds what moto lacks (custodian_ext_dev/emulator/services.py):
LeaveOrganization, AccessDenied for ListAccounts from a plain member account, and
the event history that records LeaveOrganization.
"""
import json
import os

import pytest

from custodian_ext_dev.demo.story import incident_boundary
from custodian_ext.filters import event_history
from tests.support import load_policy, new_account, policy_vars, reset_sessions, run_policy

MEMBERS = load_policy('detect/r4-3.yml', 'r4-3-new-or-unknown-member-accounts')
LEFT = load_policy('detect/r4-3.yml', 'r4-3-account-left-organization')


@pytest.fixture(autouse=True)
def _fresh_history_cache():
    event_history.clear_cache()


def create_member(org, name):
    status = org.create_account(Email=f'{name}@example.com', AccountName=name)
    return status['CreateAccountStatus']['AccountId']


def run_as(account, monkeypatch, policy, variables, out):
    """Run a policy in-process with ``account``'s credentials."""
    account.apply_env(monkeypatch)
    reset_sessions()
    return run_policy(policy, variables, account=account, output_dir=str(out))


def skip_reason(path):
    found = [os.path.join(d, 'skipped.json') for d, _, fs in os.walk(path) if 'skipped.json' in fs]
    if not found:
        return None
    with open(found[0]) as fh:
        return json.load(fh)['reason']


def test_new_and_unknown_member_accounts(aws, tmp_path):
    org = aws.client('organizations')
    org.create_organization(FeatureSet='ALL')
    known = create_member(org, 'prod')
    stranger = create_member(org, 'stranger')
    start = incident_boundary()
    fresh = create_member(org, 'fresh')
    [acct] = run_policy(MEMBERS, policy_vars(incident_start=start, known_accounts=[known, fresh]),
                        account=aws, output_dir=str(tmp_path))
    flagged = {a['Id']: a['Reasons'] for a in acct['c7n:organization-accounts']}
    assert set(flagged) == {stranger, fresh}
    assert flagged[stranger] == ['not in known_accounts']
    assert flagged[fresh][0].startswith('joined (created) at or after')
    assert run_policy(MEMBERS, policy_vars(incident_start=incident_boundary(),
                                           known_accounts=[known, stranger, fresh]),
                      account=aws, output_dir=str(tmp_path / 'clean')) == []


def test_member_accounts_skip_member_listing_and_one_leaves(aws, monkeypatch, tmp_path):
    org = aws.client('organizations')
    org.create_organization(FeatureSet='ALL')
    staying = new_account(aws.url, create_member(org, 'staying'))
    leaving = new_account(aws.url, create_member(org, 'leaving'))
    start = incident_boundary()
    variables = policy_vars(incident_start=start, known_accounts=[staying.id, leaving.id])

    # Only the management account (or a delegated administrator) lists member accounts.
    out = tmp_path / 'member'
    assert run_as(staying, monkeypatch, MEMBERS, variables, out) == []
    assert 'only its management account' in skip_reason(out)

    leaving.client('organizations').leave_organization()
    [acct] = run_as(leaving, monkeypatch, LEFT, variables, tmp_path / 'leaving')
    assert acct['c7n:organization-accounts'][0]['Reasons'] == [
        'listed in known_accounts but in no organization']
    assert [e['EventName'] for e in acct['c7n:cloudtrail-events']] == ['LeaveOrganization']
    assert run_as(staying, monkeypatch, LEFT, variables, tmp_path / 'staying') == []
    accounts = [a['Id'] for a in org.list_accounts()['Accounts']]
    assert leaving.id not in accounts and staying.id in accounts

    # Out of any organization there is nothing to list: no error, no skip.
    out = tmp_path / 'left'
    assert run_as(leaving, monkeypatch, MEMBERS, variables, out) == []
    assert skip_reason(out) is None
