"""The identity, trail, organization and account checks through the stock `custodian run`.

One sweep of a realistic clean account, one of a compromised one, each over
all of policies/detect in three regions. What moto lacks is served by the
emulator's extensions (custodian_ext_dev/emulator/event_history.py, services.py):
CloudTrail event history, service-last-accessed data, LeaveOrganization,
Roles Anywhere, and a Basic support plan for Trusted Advisor.
"""
import datetime
import json
import os

import pytest

from custodian_ext_dev.demo import story
from custodian_ext_dev.emulator import AMI_X86
from custodian_ext.filters.cost import periods
from custodian_ext.report import findings
from tests.support import by_policy, detect_sweep, key_client, new_account

pytestmark = pytest.mark.e2e

IDENTITY_STEPS = {'R1.1', 'R1.2', 'R2.1', 'R2.2', 'R3.1', 'R3.2', 'R4.1', 'R4.2', 'R4.3', 'X4',
                  'X9'}
ATTACKER_IP = '198.51.100.23'
MANAGEMENT = '123456789012'  # the account OrganizationAccountAccessRole trusts
CONTACTS = {'security': 'security@example.com', 'billing': 'billing@example.com',
            'operations': 'ops@example.com'}
ADMIN = 'arn:aws:iam::aws:policy/AdministratorAccess'


def policy(doc):
    return json.dumps({'Version': '2012-10-17', 'Statement': doc})


def seed_clean(account, management=MANAGEMENT):
    """A busy, healthy account before the incident."""
    story.seed_baseline(account.url, account.id)  # known users with keys, alice's password
    iam = account.client('iam')
    iam.attach_user_policy(UserName='deploy-bot', PolicyArn=ADMIN)
    org_trust = policy([{'Effect': 'Allow', 'Action': 'sts:AssumeRole',
                         'Principal': {'AWS': f'arn:aws:iam::{management}:root'}}])
    try:  # Organizations' CreateAccount makes it in new member accounts
        iam.create_role(RoleName='OrganizationAccountAccessRole',
                        AssumeRolePolicyDocument=org_trust)
        iam.attach_role_policy(RoleName='OrganizationAccountAccessRole', PolicyArn=ADMIN)
    except iam.exceptions.EntityAlreadyExistsException:
        iam.update_assume_role_policy(RoleName='OrganizationAccountAccessRole',
                                      PolicyDocument=org_trust)
    iam.create_role(RoleName='AWSReservedSSO_ReadOnly_0a1b2c3d4e5f6a7b',
                    Path='/aws-reserved/sso.amazonaws.com/', AssumeRolePolicyDocument=policy(
                        [{'Effect': 'Allow', 'Action': 'sts:AssumeRoleWithSAML',
                          'Principal': {'Federated': f'arn:aws:iam::{account.id}:saml-provider/'
                                                     f'AWSSSO_0a1b2c3d4e5f6a7b_DO_NOT_DELETE'}}]))
    iam.create_service_linked_role(AWSServiceName='autoscaling.amazonaws.com')
    s3 = account.client('s3')
    s3.create_bucket(Bucket=f'trail-{account.id}')
    ct = account.client('cloudtrail')
    ct.create_trail(Name='org-audit', S3BucketName=f'trail-{account.id}',
                    IsMultiRegionTrail=True, EnableLogFileValidation=True)
    ct.start_logging(Name='org-audit')
    for ctype, email in CONTACTS.items():
        account.client('account').put_alternate_contact(
            AlternateContactType=ctype.upper(), EmailAddress=email, Name='Team',
            PhoneNumber='+1-555-0100', Title='On call')
    for region in story.ALLOWED_REGIONS:
        account.client('ec2', region).run_instances(ImageId=AMI_X86, MinCount=1, MaxCount=1)
    west = account.client('ec2', 'us-west-2')
    vpc = west.describe_vpcs()['Vpcs'][0]['VpcId']
    account.client('logs', 'us-west-2').create_log_group(logGroupName='vpc-flows')
    west.create_flow_logs(ResourceIds=[vpc], ResourceType='VPC', TrafficType='ALL',
                          LogGroupName='vpc-flows',
                          DeliverLogsPermissionArn=f'arn:aws:iam::{account.id}:role/flow-logs')
    # deploy-bot's key, held by CI (and, in the compromised account, by the attacker)
    old = iam.list_access_keys(UserName='deploy-bot')['AccessKeyMetadata'][0]['AccessKeyId']
    key = iam.create_access_key(UserName='deploy-bot')['AccessKey']
    iam.delete_access_key(UserName='deploy-bot', AccessKeyId=old)
    return key


def sweep(account, tmp_path, start, **overrides):
    variables = story.demo_vars(start, trusted_accounts=[MANAGEMENT], expected_contacts=CONTACTS)
    variables.update(overrides)
    return detect_sweep(account, tmp_path, variables, story.SWEEP_REGIONS)


def test_clean_busy_account_has_no_high_or_critical_findings(account, tmp_path):
    deploy_key = seed_clean(account)
    start = story.incident_boundary()
    # business as usual after the incident started: the deploy key is in use
    key_client(account, 'ec2', deploy_key, region='us-west-2').describe_instances()
    runs = sweep(account, tmp_path, start)
    mine = [r for r in runs if r.step in IDENTITY_STEPS]
    ran = {r.policy for r in mine if r.status in ('clean', 'findings')}
    assert len(ran) >= 38, sorted(ran)
    serious = [(f.run.policy, f.resource_id) for f in findings(runs)
               if f.severity in ('critical', 'high')]
    assert serious == []
    found = by_policy(runs)
    # what a clean account legitimately shows, below high
    assert [f.resource_id for f in found['r1-1-credentials-used-since-incident']] == ['deploy-bot']
    assert [f.resource_id for f in found['x4-passwords-to-reset']] == ['alice']
    [advisor] = [r for r in runs if r.policy == 'r3-2-trusted-advisor-exposed-keys']
    assert advisor.status == 'skipped'
    with open(os.path.join(advisor.path, 'skipped.json')) as fh:
        assert 'SubscriptionRequiredException' in json.load(fh)['reason']


def test_compromised_account_trips_the_identity_checks(emulator, tmp_path):
    # The victim is a member account of an organization.
    mgmt = new_account(emulator.url)
    org = mgmt.client('organizations')
    org.create_organization(FeatureSet='ALL')
    victim = new_account(emulator.url, org.create_account(
        Email='victim@example.com', AccountName='victim')['CreateAccountStatus']['AccountId'])
    deploy_key = seed_clean(victim, management=mgmt.id)
    start = story.incident_boundary()

    # The attacker holds deploy-bot's leaked key.
    iam = key_client(victim, 'iam', deploy_key, source_ip=ATTACKER_IP)
    iam.create_user(UserName='eve')
    iam.attach_user_policy(UserName='eve', PolicyArn=ADMIN)
    eve_key = iam.create_access_key(UserName='eve')['AccessKey']
    iam.create_login_profile(UserName='eve', Password='Attacker-Passw0rd!')
    iam.create_access_key(UserName='alice')
    iam.create_role(RoleName='escape-hatch', AssumeRolePolicyDocument=policy(
        [{'Effect': 'Allow', 'Action': 'sts:AssumeRole',
          'Principal': {'AWS': 'arn:aws:iam::999999999999:root'}}]))
    iam.attach_role_policy(RoleName='escape-hatch', PolicyArn=ADMIN)
    key_client(victim, 'sts', eve_key, source_ip=ATTACKER_IP).get_federation_token(Name='x1')
    ct = key_client(victim, 'cloudtrail', deploy_key, source_ip=ATTACKER_IP)
    ct.stop_logging(Name='org-audit')
    ct.put_event_selectors(TrailName='org-audit', EventSelectors=[
        {'ReadWriteType': 'ReadOnly', 'IncludeManagementEvents': True}])
    west = key_client(victim, 'ec2', deploy_key, region='us-west-2', source_ip=ATTACKER_IP)
    west.delete_flow_logs(FlowLogIds=[west.describe_flow_logs()['FlowLogs'][0]['FlowLogId']])
    sg = west.describe_security_groups(GroupNames=['default'])['SecurityGroups'][0]['GroupId']
    west.authorize_security_group_ingress(GroupId=sg, IpPermissions=[{
        'IpProtocol': 'tcp', 'FromPort': 22, 'ToPort': 22, 'IpRanges': [{'CidrIp': '0.0.0.0/0'}]}])
    west.create_key_pair(KeyName='miner')
    key_client(victim, 'rolesanywhere', deploy_key, region='us-west-2').create_trust_anchor(
        name='attacker-ca', enabled=True, source={
            'sourceType': 'CERTIFICATE_BUNDLE', 'sourceData': {'x509CertificateData': 'MIIB'}})
    key_client(victim, 'account', deploy_key).put_alternate_contact(
        AlternateContactType='SECURITY', EmailAddress='sec@attacker.test', Name='x',
        PhoneNumber='+1-555-0199', Title='x')
    key_client(victim, 'organizations', deploy_key).leave_organization()
    today = datetime.datetime.now(datetime.timezone.utc).date()
    last_month, this_month, _, elapsed = periods(today)
    emulator.post('/moto-api/static/ce/cost-and-usage-results', {
        'account_id': victim.id, 'results': [
            {'ResultsByTime': [
                {'TimePeriod': {'Start': str(last_month), 'End': str(this_month)},
                 'Groups': [{'Keys': ['Amazon Elastic Compute Cloud - Compute'],
                             'Metrics': {'UnblendedCost': {'Amount': '100', 'Unit': 'USD'}}}]},
                {'TimePeriod': {'Start': str(this_month), 'End': str(today)},
                 'Groups': [{'Keys': ['Amazon SageMaker'],
                             'Metrics': {'UnblendedCost': {'Amount': '950', 'Unit': 'USD'}}}]}]},
            {'ResultsByTime': []}]})

    found = by_policy(sweep(victim, tmp_path, start, known_accounts=[victim.id],
                            trusted_accounts=[mgmt.id]))

    def ids(name):
        return sorted(f.resource_id for f in found.get(name, ()))

    assert ids("r4-1-unknown-iam-users") == ["eve"]
    assert ids('r4-1-unknown-iam-roles') == ['escape-hatch']
    assert ids('r4-1-access-keys-created-since-incident') == ['alice', 'eve']
    assert ids('r4-1-login-profiles-created-since-incident') == ['eve']
    assert ids('r4-2-new-admin-principals') == ['eve']
    assert ids('r4-2-new-admin-roles') == ['escape-hatch']
    assert ids('r4-2-role-trusts-unknown-account') == ['escape-hatch']
    assert [f.run.region for f in found['r4-2-roles-anywhere-trust-anchors-since-incident']] == [
        'us-west-2']
    assert ids('r2-1-trail-not-logging') == [
        f'arn:aws:cloudtrail:us-east-1:{victim.id}:trail/org-audit']
    assert len(found['r2-1-trail-excludes-management-events']) == 1

    [changes] = found['r2-2-iam-changes-since-incident']
    events = changes.resource['c7n:cloudtrail-events']
    assert {e['EventName'] for e in events} >= {'CreateUser', 'AttachUserPolicy', 'CreateAccessKey',
                                                'CreateLoginProfile', 'CreateRole'}
    assert {e['SourceIPAddress'] for e in events} == {ATTACKER_IP}
    assert {e['Principal'] for e in events} == {f'arn:aws:iam::{victim.id}:user/deploy-bot'}
    assert 'eve' in ids('r2-2-iam-users-changed-since-incident')
    assert len(found['r2-2-federation-tokens-by-unknown-principals']) == 1
    [tamper] = found['r2-2-trail-tampering-since-incident']
    assert [e['EventName'] for e in tamper.resource['c7n:cloudtrail-events']] == [
        'StopLogging', 'PutEventSelectors']
    assert [f.run.region for f in found['r2-2-flow-logs-deleted-since-incident']] == ['us-west-2']
    [ec2] = found['r2-2-ec2-access-changes-since-incident']
    assert [e['EventName'] for e in ec2.resource['c7n:cloudtrail-events']] == [
        'AuthorizeSecurityGroupIngress', 'CreateKeyPair']
    [left] = found['r4-3-account-left-organization']
    assert [e['EventName'] for e in left.resource['c7n:cloudtrail-events']] == ['LeaveOrganization']
    [contacts] = found['x9-alternate-contacts-differ']
    assert contacts.resource['c7n:alternate-contacts'][0]['EmailAddress'] == 'sec@attacker.test'
    assert ids('r1-1-credentials-used-since-incident') == ['deploy-bot', 'eve']
    if elapsed >= 1:  # on the first of a month there is no full day to compare yet
        [spend] = found['r3-1-spend-new-or-rising']
        assert {c['Key'] for c in spend.resource['c7n:cost-changes']} == {'Amazon SageMaker'}
    # and the global checks ran once, not once per region
    assert len(found['r2-2-iam-changes-since-incident']) == 1
