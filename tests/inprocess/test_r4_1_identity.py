"""R4.1 unknown and new IAM principals, R4.2 untrusted role trust, new administrators and
IAM Roles Anywhere trust anchors.

Against the emulator. moto has no Roles Anywhere; the emulator serves its
trust-anchor API (custodian_ext_dev/emulator/services.py).
"""
import json

from custodian_ext_dev.demo.story import incident_boundary
from tests.support import load_policy, policy_vars, run_policy

R41 = {n: load_policy('detect/r4-1.yml', n) for n in (
    'r4-1-unknown-iam-users', 'r4-1-unknown-iam-roles', 'r4-1-iam-users-created-since-incident',
    'r4-1-iam-roles-created-since-incident', 'r4-1-iam-policies-created-since-incident',
    'r4-1-access-keys-created-since-incident')}
R42 = {n: load_policy('detect/r4-2.yml', n) for n in (
    'r4-2-role-trusts-unknown-account', 'r4-2-new-admin-principals', 'r4-2-new-admin-roles',
    'r4-2-roles-anywhere-trust-anchors-since-incident', 'r4-2-roles-anywhere-trust-anchors')}
ADMIN = 'arn:aws:iam::aws:policy/AdministratorAccess'
ALLOW_ALL = json.dumps({'Version': '2012-10-17', 'Statement': [
    {'Effect': 'Allow', 'Action': '*', 'Resource': '*'}]})
READ_ONLY = json.dumps({'Version': '2012-10-17', 'Statement': [
    {'Effect': 'Allow', 'Action': ['s3:Get*', 's3:List*'], 'Resource': '*'}]})


def trust(*principals):
    return json.dumps({'Version': '2012-10-17', 'Statement': [
        {'Effect': 'Allow', 'Action': 'sts:AssumeRole', 'Principal': p} for p in principals]})


def run(name, aws, tmp_path, region='us-east-1', **variables):
    policy = R41.get(name) or R42[name]
    return run_policy(policy, policy_vars(**variables), region=region, account=aws,
                      output_dir=str(tmp_path))


def ids(resources, key):
    return sorted(r[key] for r in resources)


def test_unknown_users_and_roles_spare_aws_managed_roles(aws, tmp_path):
    iam = aws.client('iam')
    for user in ('alice', 'svc-build', 'intruder'):
        iam.create_user(UserName=user)
    ec2_trust = trust({'Service': 'ec2.amazonaws.com'})
    for name, path in (('app-web', '/'), ('app-worker', '/'), ('backdoor', '/'),
                       ('OrganizationAccountAccessRole', '/'),
                       ('AWSReservedSSO_AdministratorAccess_0123456789abcdef',
                        '/aws-reserved/sso.amazonaws.com/')):
        iam.create_role(RoleName=name, Path=path, AssumeRolePolicyDocument=ec2_trust)
    iam.create_service_linked_role(AWSServiceName='autoscaling.amazonaws.com')
    variables = dict(known_users=['alice', 'svc-*'], known_roles=['app-*'])
    users = run('r4-1-unknown-iam-users', aws, tmp_path, **variables)
    assert ids(users, 'UserName') == ['intruder']
    assert users[0]['c7n:unknown-principal'] == 'intruder is not in known_users'
    roles = run('r4-1-unknown-iam-roles', aws, tmp_path, **variables)
    assert ids(roles, 'RoleName') == ['backdoor']
    assert run('r4-1-unknown-iam-users', aws, tmp_path, known_users=['*']) == []


def test_principals_policies_and_keys_created_since_the_incident(aws, tmp_path):
    iam = aws.client('iam')
    iam.create_user(UserName='old')
    iam.create_access_key(UserName='old')
    ec2_trust = trust({'Service': 'ec2.amazonaws.com'})
    iam.create_role(RoleName='old-role', AssumeRolePolicyDocument=ec2_trust)
    iam.create_policy(PolicyName='old-policy', PolicyDocument=READ_ONLY)
    changed = iam.create_policy(PolicyName='changed-policy', PolicyDocument=READ_ONLY)['Policy']
    start = incident_boundary()
    iam.create_user(UserName='new')
    iam.create_role(RoleName='new-role', AssumeRolePolicyDocument=ec2_trust)
    iam.create_policy(PolicyName='new-policy', PolicyDocument=READ_ONLY)
    iam.create_policy_version(PolicyArn=changed['Arn'], PolicyDocument=ALLOW_ALL, SetAsDefault=True)
    new_key = iam.create_access_key(UserName='old')['AccessKey']  # a second key on an old user
    v = dict(incident_start=start)
    assert ids(run('r4-1-iam-users-created-since-incident', aws, tmp_path, **v),
               'UserName') == ['new']
    assert ids(run('r4-1-iam-roles-created-since-incident', aws, tmp_path, **v),
               'RoleName') == ['new-role']
    policies = run('r4-1-iam-policies-created-since-incident', aws, tmp_path, **v)
    assert ids(policies, 'PolicyName') == ['changed-policy', 'new-policy']
    [user] = run('r4-1-access-keys-created-since-incident', aws, tmp_path, **v)
    assert user['UserName'] == 'old'
    assert [k['AccessKeyId'] for k in user['c7n:matched-keys']] == [new_key['AccessKeyId']]


def test_role_trust_outside_trusted_accounts(aws, tmp_path):
    iam = aws.client('iam')
    roles = {
        'foreign': {'AWS': 'arn:aws:iam::999999999999:root'},
        'partner': {'AWS': '444455556666'},
        'anyone': {'AWS': '*'},
        'own': {'AWS': f'arn:aws:iam::{aws.id}:root'},
        'service': {'Service': 'lambda.amazonaws.com'},
    }
    for name, principal in roles.items():
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust(principal))
    found = run('r4-2-role-trusts-unknown-account', aws, tmp_path,
                trusted_accounts=['444455556666'])
    assert ids(found, 'RoleName') == ['anyone', 'foreign']
    foreign = next(r for r in found if r['RoleName'] == 'foreign')
    assert foreign['c7n:untrusted-trust'] == ['arn:aws:iam::999999999999:root']
    everything = run('r4-2-role-trusts-unknown-account', aws, tmp_path, trusted_accounts=[])
    assert ids(everything, 'RoleName') == ['anyone', 'foreign', 'partner']


def test_new_administrators(aws, tmp_path):
    iam = aws.client('iam')
    iam.create_user(UserName='old-admin')
    iam.attach_user_policy(UserName='old-admin', PolicyArn=ADMIN)
    iam.create_group(GroupName='admins')
    iam.attach_group_policy(GroupName='admins', PolicyArn=ADMIN)
    start = incident_boundary()
    for user in ('direct', 'via-group', 'inline', 'reader'):
        iam.create_user(UserName=user)
    iam.attach_user_policy(UserName='direct', PolicyArn=ADMIN)
    iam.add_user_to_group(GroupName='admins', UserName='via-group')
    iam.put_user_policy(UserName='inline', PolicyName='all', PolicyDocument=ALLOW_ALL)
    iam.put_user_policy(UserName='reader', PolicyName='read', PolicyDocument=READ_ONLY)
    custom = iam.create_policy(PolicyName='god-mode', PolicyDocument=ALLOW_ALL)['Policy']['Arn']
    ec2_trust = trust({'Service': 'ec2.amazonaws.com'})
    iam.create_role(RoleName='admin-role', AssumeRolePolicyDocument=ec2_trust)
    iam.attach_role_policy(RoleName='admin-role', PolicyArn=custom)
    iam.create_role(RoleName='plain-role', AssumeRolePolicyDocument=ec2_trust)
    users = run('r4-2-new-admin-principals', aws, tmp_path, incident_start=start)
    assert ids(users, 'UserName') == ['direct', 'inline', 'via-group']
    via = next(u for u in users if u['UserName'] == 'via-group')
    assert via['c7n:admin-access'] == [{'Source': 'managed policy', 'Policy': ADMIN,
                                        'Via': 'group admins'}]
    [role] = run('r4-2-new-admin-roles', aws, tmp_path, incident_start=start)
    assert role['RoleName'] == 'admin-role'
    assert role['c7n:admin-access'] == [{'Source': 'managed policy', 'Policy': custom}]


def test_roles_anywhere_trust_anchors(aws, tmp_path):
    ra = aws.client('rolesanywhere', 'us-west-2')
    source = {'sourceType': 'CERTIFICATE_BUNDLE',
              'sourceData': {'x509CertificateData': '-----BEGIN CERTIFICATE-----'}}
    ra.create_trust_anchor(name='corp-pki', source=source, enabled=True)
    start = incident_boundary()
    for region in ('us-east-1', 'us-west-2'):
        assert run('r4-2-roles-anywhere-trust-anchors-since-incident', aws, tmp_path,
                   region=region, incident_start=start) == []
    ra.create_trust_anchor(name='attacker-ca', source=source, enabled=True)
    [acct] = run('r4-2-roles-anywhere-trust-anchors-since-incident', aws, tmp_path,
                 region='us-west-2', incident_start=start)
    assert [a['Name'] for a in acct['c7n:roles-anywhere-trust-anchors']] == ['attacker-ca']
    [acct] = run('r4-2-roles-anywhere-trust-anchors', aws, tmp_path, region='us-west-2',
                 incident_start=start)
    assert [a['Name'] for a in acct['c7n:roles-anywhere-trust-anchors']] == ['corp-pki']
    assert run('r4-2-roles-anywhere-trust-anchors', aws, tmp_path, region='us-east-1',
               incident_start=start) == []
