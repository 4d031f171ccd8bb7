"""X5 revoke-sessions: the IAM console's AWSRevokeOlderSessions, in-process against the emulator."""
import datetime
import json
import os

from custodian_ext.actions.sessions import POLICY_NAME, merge, revoke_statement
from tests.support import fast_client, load_policy, policy_vars, run_policy

POLICY = load_policy('respond/x5.yml', 'x5-revoke-role-sessions')
TRUST = json.dumps({'Version': '2012-10-17', 'Statement': [{
    'Effect': 'Allow', 'Principal': {'Service': 'ec2.amazonaws.com'}, 'Action': 'sts:AssumeRole'}]})
CONTAIN = [{'Key': 'custodian-ext:contain', 'Value': 'incident'}]


def inline(iam, role):
    try:
        return iam.get_role_policy(RoleName=role, PolicyName=POLICY_NAME)['PolicyDocument']
    except iam.exceptions.NoSuchEntityException:
        return None


def parse(text):
    return datetime.datetime.fromisoformat(text.replace('Z', '+00:00'))


def test_revokes_marked_roles_only_never_widens_and_skips_service_linked_roles(aws, tmp_path):
    iam = fast_client(aws, 'iam')
    for name in ('fresh', 'revoked-before', 'unmarked'):
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=TRUST,
                        Tags=CONTAIN if name != 'unmarked' else [])
    extra_deny = {'Effect': 'Deny', 'Action': 's3:*', 'Resource': '*'}
    smuggled_allow = {'Effect': 'Allow', 'Action': '*', 'Resource': '*'}
    iam.put_role_policy(RoleName='revoked-before', PolicyName=POLICY_NAME,
                        PolicyDocument=json.dumps({
        'Version': '2012-10-17',
        'Statement': [extra_deny, smuggled_allow, {
            'Effect': 'Deny', 'Action': '*', 'Resource': '*',
            'Condition': {'DateLessThan': {'aws:TokenIssueTime': '2014-05-07T23:47:00Z'}}}]}))
    linked = iam.create_service_linked_role(
        AWSServiceName='autoscaling.amazonaws.com')['Role']['RoleName']
    iam.tag_role(RoleName=linked, Tags=CONTAIN)
    before = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=1)

    found = run_policy(POLICY, policy_vars(), account=aws, output_dir=str(tmp_path))

    assert {r['RoleName'] for r in found} == {'fresh', 'revoked-before', linked}
    assert inline(iam, 'unmarked') is None
    assert inline(iam, linked) is None  # IAM refuses inline policies on service-linked roles
    doc = inline(iam, 'fresh')
    [statement] = doc['Statement']
    issued = statement['Condition']['DateLessThan']['aws:TokenIssueTime']
    # Deny * on * before the time, as the console writes
    assert statement == revoke_statement(issued)
    assert before <= parse(issued) <= datetime.datetime.now(datetime.timezone.utc)
    assert issued.endswith('Z') and len(issued.split('.')[1]) == 4  # milliseconds, like the console
    updated = inline(iam, 'revoked-before')['Statement']
    assert updated[0] == extra_deny  # other denies kept
    assert smuggled_allow not in updated
    assert updated[1] == revoke_statement(issued)  # moved from 2014 to now
    with open(os.path.join(tmp_path, 'x5-revoke-role-sessions',
                           'action-results-revoke-sessions.json')) as fh:
        res = {r['resource_id']: r for r in json.load(fh)}
    assert res['revoked-before']['dropped_allow_statements'] == [smuggled_allow]
    assert 'was 2014-05-07T23:47:00Z' in res['revoked-before']['reason']
    assert res[linked]['status'] == 'skipped' and 'service-linked' in res[linked]['reason']


def test_merge_never_moves_the_time_earlier_and_handles_the_documented_shape():
    now = '2026-11-28T10:00:00.000Z'
    later = {'Version': '2012-10-17', 'Statement': {  # a single statement object, as the docs show
        'Effect': 'Deny', 'Action': '*', 'Resource': '*',
        'Condition': {'DateLessThan': {'aws:TokenIssueTime': '2030-01-01T00:00:00Z'}}}}
    doc, previous, effective, dropped = merge(later, now)
    assert effective == previous == '2030-01-01T00:00:00Z' and dropped == []
    assert doc['Statement'] == [revoke_statement('2030-01-01T00:00:00Z')]
    # A deny that is narrower than "everything" is not the revocation: kept, and one is added.
    narrow = {'Effect': 'Deny', 'Action': 'ec2:*', 'Resource': '*',
              'Condition': {'DateLessThan': {'aws:TokenIssueTime': '2030-01-01T00:00:00Z'}}}
    doc, previous, effective, _ = merge({'Statement': [narrow]}, now)
    assert previous is None and effective == now
    assert doc['Statement'] == [revoke_statement(now), narrow]
