"""R1.1 credential use and X4 passwords to reset (``credential-use``), R4.1 login profiles.

Against the emulator: moto's credential report gives a key's last use, and the
emulator extends it (custodian_ext_dev/emulator/services.py) with the region and
service of that use and the real password-change and login-profile dates.
The root row's password use cannot be seeded in moto: that case uses botocore's
Stubber with an AWS-shaped credential report.
"""
import datetime
import time

import boto3
from botocore.stub import Stubber

from custodian_ext_dev.demo.story import incident_boundary
from custodian_ext.filters import credentials
from tests.support import CREDENTIAL_REPORT_HEADER, key_client, load_policy, policy_vars, \
    run_policy

USED = load_policy('detect/r1-1.yml', 'r1-1-credentials-used-since-incident')
NEVER = load_policy('detect/r1-1.yml', 'r1-1-active-keys-never-used')
STALE = load_policy('detect/r1-1.yml', 'r1-1-stale-credentials')
ROOT = load_policy('detect/r1-1.yml', 'r1-1-root-used-since-incident')
X4 = load_policy('detect/x4.yml', 'x4-passwords-to-reset')
PROFILES = load_policy('detect/r4-1.yml', 'r4-1-login-profiles-created-since-incident')


def names(resources):
    return sorted(r['UserName'] for r in resources)


def test_keys_used_since_the_incident_are_named(aws, tmp_path):
    iam = aws.client('iam')
    keys = {}
    for user in ('quiet', 'busy', 'before'):
        iam.create_user(UserName=user)
        keys[user] = iam.create_access_key(UserName=user)['AccessKey']
    key_client(aws, 'ec2', keys['before'], region='us-west-2').describe_regions()
    start = incident_boundary()
    key_client(aws, 'ec2', keys['busy'], region='us-west-2').describe_regions()
    [busy] = run_policy(USED, policy_vars(incident_start=start), account=aws,
                        output_dir=str(tmp_path))
    assert busy['UserName'] == 'busy'
    [use] = busy['c7n:credential-use']
    assert use['AccessKeyId'] == keys['busy']['AccessKeyId']
    assert use['LastUsed'] >= start
    assert (use['LastUsedService'], use['LastUsedRegion']) == ('ec2', 'us-west-2')


def test_never_used_and_stale_keys(aws, tmp_path):
    iam = aws.client('iam')
    for user in ('spare', 'active', 'disabled'):
        iam.create_user(UserName=user)
    spare = iam.create_access_key(UserName='spare')['AccessKey']
    key_client(aws, 'iam', iam.create_access_key(UserName='active')['AccessKey']).list_users()
    off = iam.create_access_key(UserName='disabled')['AccessKey']
    iam.update_access_key(UserName='disabled', AccessKeyId=off['AccessKeyId'], Status='Inactive')
    found = run_policy(NEVER, policy_vars(), account=aws, output_dir=str(tmp_path))
    assert names(found) == ['spare']
    assert found[0]['c7n:credential-use'][0]['AccessKeyId'] == spare['AccessKeyId']

    # stale_days as a fraction: the keys are seconds old, the threshold is one second
    time.sleep(1.2)
    stale = run_policy(STALE, policy_vars(stale_days=1 / 86400), account=aws,
                       output_dir=str(tmp_path))
    assert names(stale) == ['active', 'spare']  # the inactive key is not counted
    assert run_policy(STALE, policy_vars(stale_days=90), account=aws,
                      output_dir=str(tmp_path)) == []


def test_passwords_set_before_the_incident_need_a_reset(aws, tmp_path):
    iam = aws.client('iam')
    for user in ('old-pw', 'new-pw', 'changed-pw', 'no-pw'):
        iam.create_user(UserName=user)
    iam.create_login_profile(UserName='old-pw', Password='Old-Passw0rd!')
    iam.create_login_profile(UserName='changed-pw', Password='Old-Passw0rd!')
    start = incident_boundary()
    iam.create_login_profile(UserName='new-pw', Password='New-Passw0rd!')
    iam.update_login_profile(UserName='changed-pw', Password='Reset-Passw0rd!')
    variables = policy_vars(incident_start=start)
    found = run_policy(X4, variables, account=aws, output_dir=str(tmp_path))
    assert names(found) == ['old-pw']
    assert found[0]['c7n:credential-use'][0]['LastChanged'] < start

    # R4.1: a console password created since the incident, on an old user
    created = run_policy(PROFILES, variables, account=aws, output_dir=str(tmp_path))
    assert names(created) == ['new-pw']
    assert created[0]['c7n:login-profile']['CreateDate'] >= start

    # the emulator's root row: no root sign-in, so R1.1's root policy stays quiet
    assert run_policy(ROOT, variables, account=aws, output_dir=str(tmp_path)) == []




def _root_report(password_last_used):
    return (CREDENTIAL_REPORT_HEADER
            + '<root_account>,arn:aws:iam::111122223333:root,2020-01-01T00:00:00+00:00,'
            f'not_supported,{password_last_used},not_supported,not_supported,true,false,N/A,N/A,'
            f'N/A,N/A,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A\n')


def _run_root(monkeypatch, tmp_path, password_last_used):
    from c7n.config import Config
    from c7n.policy import Policy
    from c7n.resources import load_resources
    load_resources(('aws.account',))
    iam = boto3.client('iam', region_name='us-east-1', aws_access_key_id='x',
                       aws_secret_access_key='y')
    stub = Stubber(iam)
    stub.add_response('generate_credential_report', {'State': 'COMPLETE'})
    stub.add_response('get_credential_report', {
        'Content': _root_report(password_last_used).encode(), 'ReportFormat': 'text/csv',
        'GeneratedTime': datetime.datetime(2026, 11, 28, 12, 0)})
    stub.activate()
    monkeypatch.setattr(credentials, 'local_session', lambda factory: type(
        'S', (), {'client': staticmethod(lambda name: iam)})())
    p = Policy(dict(ROOT, conditions=[]), Config.empty(
        region='us-east-1', account_id='111122223333', output_dir=str(tmp_path), cache=''))
    p.expand_variables(p.get_variables(policy_vars(incident_start='2026-11-28T09:30:00Z')))
    return p.resource_manager.filters[0].process([{'account_id': '111122223333'}])


def test_root_password_used_since_the_incident(monkeypatch, tmp_path):
    """Stubber: moto cannot record a root sign-in; the report row is AWS's format."""
    [acct] = _run_root(monkeypatch, tmp_path, '2026-11-28T10:02:00+00:00')
    [use] = acct['c7n:credential-use']
    assert use['Credential'] == 'password' and use['LastUsed'] == '2026-11-28T10:02:00Z'


def test_root_password_used_before_the_incident(monkeypatch, tmp_path):
    assert _run_root(monkeypatch, tmp_path, '2026-10-01T08:00:00+00:00') == []
