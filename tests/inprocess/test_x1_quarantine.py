"""X1: users carrying AWS's quarantine marker, with active keys (in-process, against the
emulator)."""
import json

from custodian_ext.filters.quarantine import is_aws_managed, markers_of
from tests.support import load_policy, policy_vars, run_policy

POLICY = load_policy('detect/x1.yml', 'x1-quarantined-user-active-keys')
DENY = json.dumps({'Version': '2012-10-17', 'Statement': [
    {'Effect': 'Deny', 'Action': 'iam:CreateUser', 'Resource': '*'}]})


def _user(iam, name, keys=1):
    iam.create_user(UserName=name)
    return [iam.create_access_key(UserName=name)['AccessKey']['AccessKeyId'] for _ in range(keys)]


def run(aws, tmp_path):
    return {r['UserName']: r for r in run_policy(POLICY, policy_vars(), account=aws,
                                                 output_dir=str(tmp_path))}


def test_flags_both_kinds_of_marker_and_names_the_active_keys(aws, tmp_path):
    iam = aws.client('iam')
    inline_keys = _user(iam, 'old-notice')
    iam.put_user_policy(UserName='old-notice',
                        PolicyName='AWSExposedCredentialPolicy_DO_NOT_REMOVE',
                        PolicyDocument=DENY)
    for version in ('', 'V2', 'V3'):
        _user(iam, f'new-notice{version}')
        iam.attach_user_policy(UserName=f'new-notice{version}',
                               PolicyArn=f'arn:aws:iam::aws:policy/AWSCompromisedKeyQuarantine{version}')
    found = run(aws, tmp_path)
    assert set(found) == {'old-notice', 'new-notice', 'new-noticeV2', 'new-noticeV3'}
    assert found['old-notice']['c7n:quarantine-markers'] == [
        {'kind': 'inline', 'PolicyName': 'AWSExposedCredentialPolicy_DO_NOT_REMOVE'}]
    assert [k['AccessKeyId'] for k in found['old-notice']['c7n:matched-keys']] == inline_keys
    marker = found['new-noticeV3']['c7n:quarantine-markers'][0]
    assert marker['PolicyName'] == 'AWSCompromisedKeyQuarantineV3'


def test_leaves_alone_unmarked_users_and_marked_users_without_active_keys(aws, tmp_path):
    iam = aws.client('iam')
    _user(iam, 'ordinary', keys=2)
    [key] = _user(iam, 'contained')
    iam.attach_user_policy(UserName='contained',
                           PolicyArn='arn:aws:iam::aws:policy/AWSCompromisedKeyQuarantineV2')
    iam.update_access_key(UserName='contained', AccessKeyId=key, Status='Inactive')
    _user(iam, 'other-inline')
    iam.put_user_policy(UserName='other-inline', PolicyName='SomethingElse', PolicyDocument=DENY)
    # A customer policy that only borrows the name is not AWS's marker.
    _user(iam, 'impostor')
    arn = iam.create_policy(PolicyName='AWSCompromisedKeyQuarantineV2',
                            PolicyDocument=DENY)['Policy']['Arn']
    iam.attach_user_policy(UserName='impostor', PolicyArn=arn)
    assert run(aws, tmp_path) == {}


def test_only_active_keys_are_matched(aws, tmp_path):
    iam = aws.client('iam')
    keys = _user(iam, 'leaky', keys=2)
    iam.update_access_key(UserName='leaky', AccessKeyId=keys[0], Status='Inactive')
    iam.attach_user_policy(UserName='leaky',
                           PolicyArn='arn:aws:iam::aws:policy/AWSCompromisedKeyQuarantine')
    found = run(aws, tmp_path)
    assert [k['AccessKeyId'] for k in found['leaky']['c7n:matched-keys']] == [keys[1]]


def test_markers_of_reads_authorization_details_shape():
    detail = {'UserName': 'u',
              'UserPolicyList': [{'PolicyName': 'AWSExposedCredentialPolicy_DO_NOT_REMOVE',
                                  'PolicyDocument': {}}],
              'AttachedManagedPolicies': [
                  {'PolicyName': 'AWSCompromisedKeyQuarantineV3',
                   'PolicyArn': 'arn:aws-us-gov:iam::aws:policy/AWSCompromisedKeyQuarantineV3'},
                  {'PolicyName': 'AWSCompromisedKeyQuarantine',
                   'PolicyArn': 'arn:aws:iam::111122223333:policy/AWSCompromisedKeyQuarantine'}]}
    assert [m['PolicyName'] for m in markers_of(detail)] == [
        'AWSExposedCredentialPolicy_DO_NOT_REMOVE', 'AWSCompromisedKeyQuarantineV3']
    assert not is_aws_managed('arn:aws:iam::111122223333:policy/x')
