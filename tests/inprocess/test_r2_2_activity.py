"""R2.2 / X1 activity review (``activity`` filter): what suspect credentials did.

Against the emulator: the attacker's calls named in issue #14 are replayed
with a leaked key (the emulator records every call it serves as a CloudTrail
event with the signing key, serves LookupEvents, and delivers the trail's
log files to S3 on request, data events included:
custodian_ext_dev/emulator/event_history.py, trail_logs.py). The policies
run in-process, once per source, and must report the same events. The
AWS Health and Trusted Advisor readers are tested with botocore's Stubber and
AWS-shaped responses (emulated accounts have the Basic support plan, which
those APIs refuse).
"""
import datetime
import gzip
import io
import itertools
import json
import re
import threading

import boto3
import pytest
from botocore.stub import Stubber

from custodian_ext.activity import logfile, records, review, sources, suspects
from custodian_ext.activity.known import KnownPrincipals
from custodian_ext.filters import event_history
from custodian_ext_dev.demo.story import incident_boundary
from custodian_ext_dev.emulator import AMI_X86, DEFAULT_ACCOUNT, calls, session, trail_logs
from tests.attack_replay import (
    ATTACK_CALLS,
    ATTACKER_IP,
    DENIED,
    instance,
    seed_attacked,
    trail,
    user_with_key,
)
from tests.support import (
    client_error,
    inject_faults,
    key_client,
    load_policy,
    new_account,
    policy_vars,
    run_policy,
)

X1 = ('detect/x1-activity.yml', 'x1-leaked-key-activity')
SUSPECTS = ('detect/r2-2-activity.yml', 'r2-2-suspect-credential-activity')
SENSITIVE = ('detect/r2-2-activity.yml', 'r2-2-sensitive-reads-by-unknown-principals')


@pytest.fixture(autouse=True)
def _fresh(monkeypatch):
    event_history.clear_cache()
    review.clear_cache()
    # The 2 requests/s limit is tested on its own below; elsewhere it would only add waits.
    monkeypatch.setattr(event_history, 'limiter', event_history.RateLimiter(0.0))
    yield
    event_history.clear_cache()
    review.clear_cache()


def settings(start, **kw):
    """The tests' settings: the emulator's default account, from which every test account
    is reached (as a management account reaches its members), is trusted."""
    values = {'incident_start': start, 'trusted_accounts': [DEFAULT_ACCOUNT],
              'known_users': ['alice', 'deploy-bot'],
              'known_roles': ['OrganizationAccountAccessRole', 'app-role']}
    values.update(kw)
    return policy_vars(**values)


def run(aws, which, variables, region='us-east-1', tmp_path='', **options):
    data = load_policy(*which)
    data['filters'][0].update(options)
    review.clear_cache()
    event_history.clear_cache()
    return run_policy(data, variables, region=region, account=aws, output_dir=str(tmp_path))


def ids(resource):
    return {e['EventId'] for e in resource['c7n:activity']}


def by_name(resource):
    out = {}
    for e in resource['c7n:activity']:
        out.setdefault(e['EventName'], []).append(e)
    return out


# -- the leaked key, replayed --------------------------------------------------------------

@pytest.fixture
def attacked(aws):
    return seed_attacked(aws)


def test_leaked_key_activity_same_events_from_both_sources(aws, attacked, tmp_path):
    variables = settings(attacked['start'])
    found = {}
    for region in ('us-east-1', 'us-west-2'):
        for source in ('event-history', 'trail-logs'):
            [acct] = run(aws, X1, variables, region, tmp_path, source=source)
            found[region, source] = acct
            assert acct['c7n:activity-coverage']['Sources'] == [source]
            assert acct['c7n:activity-coverage']['CutShort'] == []
            for e in acct['c7n:activity']:
                assert e['Source'] == source
                assert e['AccessKeyId'] in (attacked['key'], attacked['federated'])
                assert e['EventTime'] >= attacked['start'] and e['Region'] == region
    east_eh, east_logs = found['us-east-1', 'event-history'], found['us-east-1', 'trail-logs']
    # Data events exist only in the trail's log files; everything else is the same event.
    data_events = {e['EventId'] for e in east_logs['c7n:activity']
                   if e['EventSource'] == 's3.amazonaws.com'}
    assert {e['EventName'] for e in east_logs['c7n:activity'] if e['EventId'] in data_events} \
        == {'PutObject', 'DeleteObject'}
    assert ids(east_eh) == ids(east_logs) - data_events
    assert ids(found['us-west-2', 'event-history']) == ids(found['us-west-2', 'trail-logs'])
    assert east_logs['c7n:activity-coverage']['DataEvents'] == 'recorded'
    assert east_eh['c7n:activity-coverage']['DataEvents'] == 'unknown'
    assert any('records data events' in n for n in east_eh['c7n:activity-coverage']['Notes'])

    events = by_name(east_eh)
    for name in ATTACK_CALLS:
        assert name in events, name
    for name, [e, *_] in events.items():
        if e['AccessKeyId'] != attacked['key']:
            continue
        assert e['EventId'] and e['SourceIPAddress'] == ATTACKER_IP
        assert e['Principal'] == f'arn:aws:iam::{aws.id}:user/deploy-bot'
        assert e['Suspect']['Credential'] == attacked['key']
        assert e['Suspect']['Via'] == [attacked['key']]
        assert 'AWSCompromisedKeyQuarantineV2' in e['Suspect']['Reason']
    secret = events['GetSecretValue'][0]
    assert (secret['Tactic'], secret['TacticId'], secret['Severity']) == (
        'credential-access', 'TA0006', 'high')
    assert {'Type': 'AWS::SecretsManager::Secret', 'Name': 'prod/db'} in secret['Resources']
    assert events['GetParameter'][0]['CatalogueId'] == 'ssm-get-parameter-decrypted'
    assert events['ModifyInstanceAttribute'][0]['Tactic'] == 'execution'
    assert {'Type': 'AWS::EC2::Instance', 'Name': attacked['instance']} in \
        events['SendCommand'][0]['Resources']
    assert events['LeaveOrganization'][0]['ErrorCode'] == 'AWSOrganizationsNotInUseException'
    burst = [e for e in east_eh['c7n:activity'] if e['ErrorCode'] in DENIED]
    assert len(burst) == 5 and {e['EventName'] for e in burst} == {
        'CreateUser', 'CreateAccessKey', 'RunInstances'}
    # the federated session the leaked key obtained is followed into us-west-2
    west = by_name(found['us-west-2', 'event-history'])
    assert west['GetSecretValue'][0]['Resources'] == [
        {'Type': 'AWS::SecretsManager::Secret', 'Name': 'prod/api'}]
    [listed] = west['ListSecrets']
    assert listed['AccessKeyId'] == attacked['federated']
    assert listed['PrincipalType'] == 'FederatedUser'
    assert listed['Suspect']['Via'] == [attacked['key'], attacked['federated']]
    assert 'GetFederationToken' in listed['Suspect']['Reason']
    # the known user's read of the same secret is no finding
    assert attacked['alice'] not in {e['AccessKeyId'] for e in east_eh['c7n:activity']}


def test_known_leaked_user_is_not_an_unknown_reader(aws, attacked, tmp_path):
    """deploy-bot is a known user: its reads are the suspect-credential policies' business,
    not the unknown-reader policy's; the R2.2 suspect policy sees the same leaked key."""
    variables = settings(attacked['start'])
    assert run(aws, SENSITIVE, variables, 'us-east-1', tmp_path) == []
    [acct] = run(aws, SUSPECTS, variables, 'us-east-1', tmp_path)
    assert {e['AccessKeyId'] for e in acct['c7n:activity']} == {attacked['key']}
    assert 'GetSecretValue' in by_name(acct)


def test_sensitive_reads_by_a_principal_that_is_not_known(aws, tmp_path):
    key = user_with_key(aws, 'contractor', admin=True)
    aws.client('secretsmanager').create_secret(Name='prod/db', SecretString='x')
    aws.client('ssm').put_parameter(Name='/p', Value='v', Type='SecureString')
    start = incident_boundary()
    key_client(aws, 'secretsmanager', key).get_secret_value(SecretId='prod/db')
    key_client(aws, 'ssm', key).get_parameter(Name='/p', WithDecryption=False)  # not decrypted
    key_client(aws, 'ssm', key).get_parameter(Name='/p', WithDecryption=True)
    [acct] = run(aws, SENSITIVE, settings(start), 'us-east-1', tmp_path)
    events = acct['c7n:activity']
    assert sorted((e['EventName'], e['CatalogueId']) for e in events) == [
        ('GetParameter', 'ssm-get-parameter-decrypted'),
        ('GetSecretValue', 'secretsmanager-get-secret-value')]
    assert by_name(acct)['GetSecretValue'][0]['Suspect'] == {
        'Credential': key['AccessKeyId'], 'Via': [key['AccessKeyId']],
        'Reason': f'a sensitive read by arn:aws:iam::{aws.id}:user/contractor, which is not '
                  f'a known principal'}
    assert run(aws, SENSITIVE, settings(start, known_users=['contractor']), 'us-east-1',
               tmp_path) == []


@pytest.mark.parametrize('volume', ['quiet', 'many-writes', 'many-reads'])
def test_one_read_of_a_quiet_region_or_a_stream_or_lookups_by_name(aws, tmp_path, monkeypatch,
                                                                   volume):
    """A quiet region's whole history (at most HISTORY_PAGES pages) answers every round at
    once; when it is longer, its read-only history (at most READ_STREAM_PAGES pages) answers
    every sensitive-read name; when that is longer too, each name is looked up. Same events
    every way."""
    key = user_with_key(aws, 'contractor', admin=True)
    aws.client('secretsmanager').create_secret(Name='prod/db', SecretString='x')
    start = incident_boundary()
    if volume != 'quiet':  # calls by a known principal, more than the whole history's page
        monkeypatch.setattr(event_history, 'HISTORY_PAGES', 1)
        ssm, ec2 = aws.client('ssm'), aws.client('ec2')
        for _ in range(event_history.PAGE_SIZE + 1):
            ssm.put_parameter(Name='p', Value='x', Type='String', Overwrite=True)
        if volume == 'many-reads':  # ... and more read-only calls than the stream's pages
            for _ in range(sources.READ_STREAM_PAGES * event_history.PAGE_SIZE + 1):
                ec2.describe_key_pairs()
    key_client(aws, 'secretsmanager', key).get_secret_value(SecretId='prod/db')
    asked = []
    real = event_history.lookup

    def recording(client, retry, k, attribute, *args, **kw):
        asked.append(('*', '*') if attribute is None else
                     (attribute['AttributeKey'], attribute['AttributeValue']))
        return real(client, retry, k, attribute, *args, **kw)

    monkeypatch.setattr(event_history, 'lookup', recording)
    [acct] = run(aws, SENSITIVE, settings(start), 'us-east-1', tmp_path)
    assert [e['EventName'] for e in acct['c7n:activity']] == ['GetSecretValue']
    assert acct['c7n:activity-coverage']['CutShort'] == []
    assert asked[0] == ('*', '*')
    by_name = {v for k, v in asked if k == 'EventName'}
    if volume == 'quiet':
        assert asked == [('*', '*')]
    elif volume == 'many-writes':
        assert ('ReadOnly', 'true') in asked
        assert not by_name & {'GetSecretValue', 'GetParameter'}
    else:
        assert ('ReadOnly', 'true') in asked
        assert {'GetSecretValue', 'GetParameter'} <= by_name


def test_a_busy_region_looks_up_what_does_not_depend_on_the_global_phase_during_it(
        aws, tmp_path, monkeypatch):
    """A region too busy for one read of its whole history makes, while the global-events
    region is still being reviewed, the lookups its first round asks whatever that review
    finds: the first suspects' keys and the credential-issuing calls. Only the keys found
    in us-east-1 are left for after it. (The global phase's first lookup waits here until
    the region's read-ahead has looked up GetSessionToken; without a read-ahead it would
    wait the full 20 s and the test fails.)"""
    monkeypatch.setattr(event_history, 'HISTORY_PAGES', 0)  # never one read of the whole
    key = user_with_key(aws, 'ci-legacy', admin=True)
    aws.client('secretsmanager', 'us-west-2').create_secret(Name='west', SecretString='x')
    start = incident_boundary()
    key_client(aws, 'secretsmanager', key, region='us-west-2').get_secret_value(SecretId='west')
    independent = {key['AccessKeyId'], 'GetSessionToken', 'GetFederationToken', 'AssumeRole'}
    ahead, lock, real = threading.Event(), threading.Lock(), event_history.lookup
    early, waited = set(), []

    def recording(client, retry, k, attribute, *args, **kw):
        what = attribute and attribute['AttributeValue']
        if k[1] == 'us-east-1' and not waited:
            waited.append(ahead.wait(20))
        if k[1] == 'us-west-2' and not ahead.is_set():
            with lock:
                early.add(what)
                if independent <= early:
                    ahead.set()
        return real(client, retry, k, attribute, *args, **kw)

    monkeypatch.setattr(event_history, 'lookup', recording)
    [west] = run(aws, SUSPECTS, settings(start, suspect_access_keys=[key['AccessKeyId']]),
                 'us-west-2', tmp_path, source='event-history')
    assert waited == [True], early
    assert [e['EventName'] for e in west['c7n:activity']] == ['GetSecretValue']


def test_a_busy_history_is_given_up_after_the_page_that_shows_it():
    """The whole-history read stops as soon as its pages show that the window needs more
    than its budget: the rest of the window at the rate of events read so far."""
    t = datetime.datetime(2026, 12, 1, tzinfo=datetime.timezone.utc)
    start, end = t, t + datetime.timedelta(hours=24)
    page = [{'EventTime': end - datetime.timedelta(hours=1)}]   # one page: the last hour
    assert event_history.needs_more(page, start, end, 1, 4)
    page = [{'EventTime': t + datetime.timedelta(hours=6)}]     # 3/4 of the window: ~1.3 pages
    assert not event_history.needs_more(page, start, end, 1, 4)
    page = [{'EventTime': end}]                                 # a page within one second
    assert event_history.needs_more(page, start, end, 1, 4)
    assert not event_history.needs_more([], start, end, 1, 4)


# -- following the chain -------------------------------------------------------------------

TRUST_ANY_IN_ACCOUNT = json.dumps({'Version': '2012-10-17', 'Statement': [{
    'Effect': 'Allow', 'Principal': {'AWS': f'arn:aws:iam::{DEFAULT_ACCOUNT}:root'},
    'Action': 'sts:AssumeRole'}]})


@pytest.mark.parametrize('history_pages', [event_history.HISTORY_PAGES, 0],
                         ids=['whole-history', 'lookups-by-key-and-name'])
def test_chain_of_sessions_keys_and_backdoored_roles(aws, tmp_path, monkeypatch, history_pages):
    """suspect AKIA -> AssumeRole -> ASIA -> calls; -> CreateAccessKey -> AKIA -> calls;
    -> CreateRole 'maint' -> a session of maint (issued to a trusted account) -> calls.
    The same from each region's whole history and from lookups by key and name (0 pages:
    never the whole history)."""
    monkeypatch.setattr(event_history, 'HISTORY_PAGES', history_pages)
    trail(aws, data_events=False)
    iam = aws.client('iam')
    iam.create_role(RoleName='ops', AssumeRolePolicyDocument=TRUST_ANY_IN_ACCOUNT)
    key = user_with_key(aws, 'ci-legacy')
    aws.client('secretsmanager', 'us-west-2').create_secret(Name='west', SecretString='x')
    start = incident_boundary()
    sts = key_client(aws, 'sts', key, source_ip=ATTACKER_IP)
    creds = sts.assume_role(RoleArn=f'arn:aws:iam::{aws.id}:role/ops',
                            RoleSessionName='xx')['Credentials']
    as_ops = boto3.Session(aws_access_key_id=creds['AccessKeyId'],
                           aws_secret_access_key=creds['SecretAccessKey'],
                           aws_session_token=creds['SessionToken'])
    as_ops.client('secretsmanager', region_name='us-west-2', endpoint_url=aws.url) \
        .get_secret_value(SecretId='west')
    attacker_iam = key_client(aws, 'iam', key, source_ip=ATTACKER_IP)
    attacker_iam.create_user(UserName='svc-metrics')
    new_key = attacker_iam.create_access_key(UserName='svc-metrics')['AccessKey']
    key_client(aws, 'ec2', new_key, region='us-west-2').describe_instances()
    attacker_iam.create_role(RoleName='maint', AssumeRolePolicyDocument=TRUST_ANY_IN_ACCOUNT)
    attacker_iam.attach_role_policy(RoleName='maint',
                                    PolicyArn='arn:aws:iam::aws:policy/AdministratorAccess')
    # a session of the backdoored role, issued to a principal that is itself trusted
    maint = session(aws.url).client('sts').assume_role(
        RoleArn=f'arn:aws:iam::{aws.id}:role/maint', RoleSessionName='mm')['Credentials']
    boto3.client('ec2', region_name='us-west-2', endpoint_url=aws.url,
                 aws_access_key_id=maint['AccessKeyId'],
                 aws_secret_access_key=maint['SecretAccessKey'],
                 aws_session_token=maint['SessionToken']).describe_key_pairs()
    variables = settings(start, suspect_access_keys=[key['AccessKeyId']])
    k, s1, k2, s2 = key['AccessKeyId'], creds['AccessKeyId'], new_key['AccessKeyId'], \
        maint['AccessKeyId']
    [west] = run(aws, SUSPECTS, variables, 'us-west-2', tmp_path, source='event-history')
    chains = {e['AccessKeyId']: (e['EventName'], e['Suspect']['Via'])
              for e in west['c7n:activity']}
    assert chains == {s1: ('GetSecretValue', [k, s1]),
                      k2: ('DescribeInstances', [k, k2]),
                      s2: ('DescribeKeyPairs', [k, 'role/maint', s2])}
    reasons = {e['AccessKeyId']: e['Suspect']['Reason'] for e in west['c7n:activity']}
    assert reasons[s1] == f'issued by AssumeRole to suspect {k}'
    assert reasons[k2] == f'created by suspect {k} (CreateAccessKey)'
    assert reasons[s2] == f'a session of role maint; suspect {k} created it'
    [east] = run(aws, SUSPECTS, variables, 'us-east-1', tmp_path, source='event-history')
    assert {e['EventName'] for e in east['c7n:activity']} >= {
        'AssumeRole', 'CreateUser', 'CreateAccessKey', 'CreateRole', 'AttachRolePolicy'}
    assert {e['AccessKeyId'] for e in east['c7n:activity']} == {k}
    # the trail's log files tell the same story, event for event
    trail_logs.deliver_now(aws.url, aws.id)
    for region, seen in (('us-west-2', west), ('us-east-1', east)):
        [logs] = run(aws, SUSPECTS, variables, region, tmp_path, source='trail-logs')
        assert ids(logs) == ids(seen)
        assert [e['Suspect'] for e in logs['c7n:activity']] == \
            [e['Suspect'] for e in seen['c7n:activity']]


def test_unknown_principal_and_its_sessions_are_followed(aws, tmp_path):
    """A user outside known_users obtains credentials: R2.2's unknown principal. Its own
    key and the session it got are suspect, and what they did is reported."""
    iam = aws.client('iam')
    iam.create_role(RoleName='app-role', AssumeRolePolicyDocument=TRUST_ANY_IN_ACCOUNT)
    stranger = user_with_key(aws, 'stranger')
    aws.client('secretsmanager').create_secret(Name='s', SecretString='x')
    start = incident_boundary()
    key_client(aws, 'iam', stranger).list_users()
    creds = key_client(aws, 'sts', stranger).assume_role(
        RoleArn=f'arn:aws:iam::{aws.id}:role/app-role', RoleSessionName='ss')['Credentials']
    boto3.client('secretsmanager', region_name='us-east-1', endpoint_url=aws.url,
                 aws_access_key_id=creds['AccessKeyId'],
                 aws_secret_access_key=creds['SecretAccessKey'],
                 aws_session_token=creds['SessionToken']).get_secret_value(SecretId='s')
    [acct] = run(aws, SUSPECTS, settings(start), 'us-east-1', tmp_path)
    events = by_name(acct)
    assert events['AssumeRole'][0]['AccessKeyId'] == stranger['AccessKeyId']
    assert 'not a known principal' in events['AssumeRole'][0]['Suspect']['Reason']
    [read] = events['GetSecretValue']
    assert read['AccessKeyId'] == creds['AccessKeyId']
    assert read['Suspect']['Via'] == [stranger['AccessKeyId'], creds['AccessKeyId']]
    assert 'ListUsers' in events  # everything the unknown principal did, not only the call
    # the same principal, known: nothing to follow
    assert run(aws, SUSPECTS, settings(start, known_users=['alice', 'stranger']),
               'us-east-1', tmp_path) == []


# -- a clean, busy account -----------------------------------------------------------------

def test_clean_busy_account_raises_nothing(aws, tmp_path):
    """Normal work by known users and roles after incident_start, in two regions: no policy
    of the activity review matches, whichever source it reads."""
    trail(aws)
    iam = aws.client('iam')
    iam.create_role(RoleName='app-role', AssumeRolePolicyDocument=TRUST_ANY_IN_ACCOUNT)
    alice = user_with_key(aws, 'alice')
    bot = user_with_key(aws, 'deploy-bot')
    aws.client('secretsmanager').create_secret(Name='prod/db', SecretString='x')
    aws.client('ssm', 'us-west-2').put_parameter(Name='/app/key', Value='v', Type='SecureString')
    aws.client('s3').create_bucket(Bucket=f'app-{aws.id}')
    iid = instance(aws)
    start = incident_boundary()
    key_client(aws, 'secretsmanager', alice).get_secret_value(SecretId='prod/db')
    key_client(aws, 'ec2', alice).describe_instance_attribute(InstanceId=iid,
                                                               Attribute='userData')
    creds = key_client(aws, 'sts', bot).assume_role(
        RoleArn=f'arn:aws:iam::{aws.id}:role/app-role', RoleSessionName='deploy')['Credentials']
    app = boto3.Session(aws_access_key_id=creds['AccessKeyId'],
                        aws_secret_access_key=creds['SecretAccessKey'],
                        aws_session_token=creds['SessionToken'])
    app.client('ssm', region_name='us-west-2', endpoint_url=aws.url).get_parameter(
        Name='/app/key', WithDecryption=True)
    app.client('s3', region_name='us-east-1', endpoint_url=aws.url).put_object(
        Bucket=f'app-{aws.id}', Key='build.zip', Body=b'x')
    key_client(aws, 'ec2', bot, region='us-west-2').run_instances(
        ImageId=AMI_X86, MinCount=1, MaxCount=1)
    key_client(aws, 'iam', alice).create_user(UserName='bob')  # an admin at work
    aws.client('iam').list_users()  # the responder's own session
    trail_logs.deliver_now(aws.url, aws.id)
    variables = settings(start)
    for region in ('us-east-1', 'us-west-2'):
        for source in ('event-history', 'trail-logs'):
            for which in (X1, SUSPECTS, SENSITIVE):
                assert run(aws, which, variables, region, tmp_path, source=source) == [], \
                    (which, region, source)


# -- coverage: never "clean" when not everything was read --------------------------------

def test_cut_short_history_matches_and_says_so(aws, tmp_path):
    key = user_with_key(aws, 'ci-legacy', admin=False)
    start = incident_boundary()
    iam = key_client(aws, 'sts', key)
    for _ in range(3):
        iam.get_caller_identity()
    variables = settings(start, suspect_access_keys=[key['AccessKeyId']])
    # GetCallerIdentity is rated below medium: alone, it is no finding
    assert run(aws, SUSPECTS, variables, 'us-east-1', tmp_path, source='event-history',
               suspects=['setting']) == []
    original = event_history.PAGE_SIZE
    try:
        event_history.PAGE_SIZE = 1
        [acct] = run(aws, SUSPECTS, variables, 'us-east-1', tmp_path, source='event-history',
                     suspects=['setting'], **{'max-pages': 2})
    finally:
        event_history.PAGE_SIZE = original
    [cut] = acct['c7n:activity-coverage']['CutShort']
    assert f"AccessKeyId {key['AccessKeyId']} stopped after 2 pages" in cut


def test_unreadable_bucket_falls_back_to_event_history(aws, monkeypatch, tmp_path):
    trail(aws)
    key = user_with_key(aws, 'ci-legacy')
    aws.client('secretsmanager').create_secret(Name='s', SecretString='x')
    start = incident_boundary()
    key_client(aws, 'secretsmanager', key).get_secret_value(SecretId='s')
    trail_logs.deliver_now(aws.url, aws.id)
    variables = settings(start, suspect_access_keys=[key['AccessKeyId']])

    def denied(params, call):
        raise client_error('AccessDenied', 'ListObjectsV2', 'Access Denied')

    inject_faults(monkeypatch, ListObjectsV2=denied)
    [acct] = run(aws, SUSPECTS, variables, 'us-east-1', tmp_path)  # auto: data events
    coverage = acct['c7n:activity-coverage']
    assert coverage['Sources'] == ['event-history'] and coverage['CutShort'] == []
    assert any('could not be listed (AccessDenied)' in n and 'event history' in n
               for n in coverage['Notes']), coverage['Notes']
    assert coverage['DataEvents'] == 'unknown'
    assert [e['EventName'] for e in acct['c7n:activity']] == ['GetSecretValue']
    # asked for trail logs only: the review is incomplete, and says so
    [acct] = run(aws, SUSPECTS, variables, 'us-east-1', tmp_path, source='trail-logs')
    assert acct['c7n:activity'] == []
    assert 'AccessDenied' in acct['c7n:activity-coverage']['CutShort'][0]


def test_stopped_trail_is_not_used(aws, tmp_path):
    trail(aws)
    key = user_with_key(aws, 'ci-legacy')
    start = incident_boundary()
    key_client(aws, 'cloudtrail', key).stop_logging(Name='org-trail')
    [acct] = run(aws, SUSPECTS, settings(start, suspect_access_keys=[key['AccessKeyId']]),
                 'us-east-1', tmp_path)
    coverage = acct['c7n:activity-coverage']
    assert coverage['Sources'] == ['event-history']
    assert any('trail org-trail: it is not logging' in n for n in coverage['Notes'])
    assert [e['EventName'] for e in acct['c7n:activity']] == ['StopLogging']
    assert acct['c7n:activity'][0]['Tactic'] == 'defense-evasion'


# -- rate limit under throttling ------------------------------------------------------------

def test_throttled_history_stays_within_two_requests_per_second(aws, monkeypatch, tmp_path):
    """Every 3rd request is answered with the service's throttling error: the review
    completes with the same events, and every LookupEvents attempt, retries included,
    goes out no sooner than 0.5 s after the last of its account-region."""
    key = user_with_key(aws, 'ci-legacy')
    aws.client('secretsmanager').create_secret(Name='s', SecretString='x')
    start = incident_boundary()
    for _ in range(2):
        key_client(aws, 'secretsmanager', key).get_secret_value(SecretId='s')
    key_client(aws, 'ec2', key, region='us-west-2').describe_instances()
    variables = settings(start, suspect_access_keys=[key['AccessKeyId']])
    options = {'source': 'event-history', 'min-severity': 'low'}
    calm = {region: ids(run(aws, SUSPECTS, variables, region, tmp_path, **options)[0])
            for region in ('us-east-1', 'us-west-2')}

    limiter = event_history.RateLimiter(event_history.MIN_INTERVAL)
    slots = []
    sending = limiter.sending

    def timed_sending(k):  # botocore's before-send: each attempt, as it goes out
        sending(k)
        slots.append((k, event_history.clock()))

    monkeypatch.setattr(limiter, 'sending', timed_sending)
    monkeypatch.setattr(event_history, 'limiter', limiter)
    calls.start(aws.url)
    calls.throttle(aws.url, 3)
    try:
        stormy = {region: ids(run(aws, SUSPECTS, variables, region, tmp_path, **options)[0])
                  for region in ('us-east-1', 'us-west-2')}
    finally:
        calls.throttle(aws.url, 0)
    assert stormy == calm
    counted = [c for c in calls.fetch(aws.url)
               if c['operation'] == 'LookupEvents' and c['account'] == aws.id]
    attempts = sum(c['served'] + c['throttled'] for c in counted)
    assert sum(c['throttled'] for c in counted) > 0
    assert attempts == len(slots)  # every attempt, retries too, took a slot
    for region in ('us-east-1', 'us-west-2'):
        times = [t for k, t in slots if k == (aws.id, region)]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert times and min(gaps, default=1) >= event_history.MIN_INTERVAL - 0.01


# -- organization trails and the emulator's delivery -----------------------------------------

def test_organization_trail_layout(aws, tmp_path):
    aws.client('organizations').create_organization(FeatureSet='ALL')
    bucket = f'org-trail-{aws.id}'
    aws.client('s3').create_bucket(Bucket=bucket)
    ct = aws.client('cloudtrail')
    ct.create_trail(Name='org-trail', S3BucketName=bucket, IsMultiRegionTrail=True,
                    IsOrganizationTrail=True)
    ct.start_logging(Name='org-trail')
    key = user_with_key(aws, 'ci-legacy')
    aws.client('secretsmanager').create_secret(Name='s', SecretString='x')
    start = incident_boundary()
    key_client(aws, 'secretsmanager', key).get_secret_value(SecretId='s')
    trail_logs.deliver_now(aws.url, aws.id)
    org_id = aws.client('organizations').describe_organization()['Organization']['Id']
    keys = [o['Key'] for o in aws.client('s3').list_objects_v2(Bucket=bucket)['Contents']]
    assert all(k.startswith(f'AWSLogs/{org_id}/{aws.id}/CloudTrail/') for k in keys)
    variables = settings(start, suspect_access_keys=[key['AccessKeyId']])
    [acct] = run(aws, SUSPECTS, variables, 'us-east-1', tmp_path, source='trail-logs')
    assert [e['EventName'] for e in acct['c7n:activity']] == ['GetSecretValue']


LOG_KEY = re.compile(r'^audit/AWSLogs/(\d{12})/CloudTrail/([a-z0-9-]+)/(\d{4})/(\d{2})/(\d{2})/'
                     r'\1_CloudTrail_\2_\3\4\5T\d{4}Z_[A-Za-z0-9]{16}\.json\.gz$')


def test_emulator_delivers_trail_logs_as_aws_does(aws):
    bucket = trail(aws, data_events=False)
    key = user_with_key(aws, 'ci-legacy')
    aws.client('s3').create_bucket(Bucket=f'data-{aws.id}')
    key_client(aws, 'iam', key).list_users()
    key_client(aws, 'ec2', key, region='eu-north-1').describe_vpcs()
    key_client(aws, 's3', key).put_object(Bucket=f'data-{aws.id}', Key='k', Body=b'x')
    first = trail_logs.deliver_now(aws.url, aws.id)['delivered']
    assert first[0]['files'] >= 2
    s3 = aws.client('s3')
    got = {}
    for o in s3.list_objects_v2(Bucket=bucket)['Contents']:
        m = LOG_KEY.match(o['Key'])
        assert m, o['Key']
        body = s3.get_object(Bucket=bucket, Key=o['Key'])['Body'].read()
        for r in json.loads(gzip.decompress(body))['Records']:
            assert r['awsRegion'] == m.group(2) and r['recipientAccountId'] == aws.id
            got[r['eventID']] = r
    mine = [r for r in got.values() if r['userIdentity'].get('accessKeyId') == key['AccessKeyId']]
    assert sorted((r['eventName'], r['awsRegion']) for r in mine) == [
        ('DescribeVpcs', 'eu-north-1'), ('ListUsers', 'us-east-1')]  # no data events selected
    # each event once, and the same record LookupEvents serves
    assert trail_logs.deliver_now(aws.url, aws.id)['delivered'][0]['records'] < 10
    [row] = [e for e in aws.client('cloudtrail').lookup_events(LookupAttributes=[
        {'AttributeKey': 'AccessKeyId', 'AttributeValue': key['AccessKeyId']}])['Events']]
    assert json.loads(row['CloudTrailEvent']) == got[row['EventId']]


def test_emulator_selectors_global_events_and_advanced_data_events(aws):
    ct = aws.client('cloudtrail')
    aws.client('s3').create_bucket(Bucket=f'w-{aws.id}')
    aws.client('s3').create_bucket(Bucket=f'data-{aws.id}')
    ct.create_trail(Name='writes-only', S3BucketName=f'w-{aws.id}', IsMultiRegionTrail=False,
                    IncludeGlobalServiceEvents=False)
    ct.put_event_selectors(TrailName='writes-only', AdvancedEventSelectors=[
        {'Name': 'writes', 'FieldSelectors': [
            {'Field': 'eventCategory', 'Equals': ['Management']},
            {'Field': 'readOnly', 'Equals': ['false']}]},
        {'Name': 'objects', 'FieldSelectors': [
            {'Field': 'eventCategory', 'Equals': ['Data']},
            {'Field': 'resources.type', 'Equals': ['AWS::S3::Object']},
            {'Field': 'resources.ARN', 'StartsWith': [f'arn:aws:s3:::data-{aws.id}/']}]}])
    ct.start_logging(Name='writes-only')
    key = user_with_key(aws, 'ci-legacy')
    c = key_client(aws, 'ec2', key)
    c.describe_vpcs()
    c.create_key_pair(KeyName='k')
    key_client(aws, 'iam', key).create_user(UserName='global-event')
    key_client(aws, 's3', key).put_object(Bucket=f'data-{aws.id}', Key='a', Body=b'x')
    key_client(aws, 'ec2', key, region='us-west-2').create_key_pair(KeyName='k2')
    trail_logs.deliver_now(aws.url, aws.id)
    s3 = aws.client('s3')
    names = []
    for o in s3.list_objects_v2(Bucket=f'w-{aws.id}')['Contents']:
        body = s3.get_object(Bucket=f'w-{aws.id}', Key=o['Key'])['Body'].read()
        names += [(r['eventName'], r['awsRegion']) for r in json.loads(gzip.decompress(body))[
            'Records'] if r['userIdentity'].get('accessKeyId') == key['AccessKeyId']]
    # writes only, its home region only, no IAM (global) events, the selected objects
    assert sorted(names) == [('CreateKeyPair', 'us-east-1'), ('PutObject', 'us-east-1')]
    [trail_] = sources.find_trails(aws.session(), 'us-east-1', 'us-east-1', sources.Window(
        datetime.datetime.now(datetime.timezone.utc), datetime.datetime.now(
            datetime.timezone.utc)), lambda f, **kw: f(**kw))[0]
    assert not trail_.usable and 'only management writes' in trail_.why
    assert trail_.data_types == ('AWS::S3::Object',)


# -- pieces ---------------------------------------------------------------------------------

def _gz(text, members=1):
    out = b''
    step = max(1, len(text) // members)
    for i in range(0, len(text), step):
        out += gzip.compress(text[i:i + step].encode())
    return out


@pytest.mark.parametrize('chunk', [1, 7, 64 * 1024])
def test_log_file_records_stream_across_any_chunking(chunk):
    recs = [{'eventID': str(i), 'eventName': 'GetObject', 'requestParameters': {
        'key': 'ünïcødé/€' * (i % 5), 'n': i * 1.5}, 'flag': i % 2 == 0, 'none': None}
        for i in range(40)]
    text = json.dumps({'Records': recs, 'digest': {'x': [1, 2]}}, ensure_ascii=False)
    for members in (1, 3):
        got = list(logfile.records(io.BytesIO(_gz(text, members)), chunk_size=chunk))
        assert got == recs
    assert list(logfile.records(io.BytesIO(gzip.compress(b'{"Records": []}')))) == []


@pytest.mark.parametrize('body,needle', [
    (b'not gzip at all', 'not a gzip file'),
    (gzip.compress(b'{"Records": [{"a": 1}, 3]}'), 'not a JSON object'),
    (gzip.compress(b'{"Records": [{"a": 1}, {"b": '), 'truncated JSON'),
    (gzip.compress(b'[1, 2]'), "expected '{'"),
], ids=['not-gzip', 'not-an-object', 'truncated', 'not-a-dict'])  # gzip stamps the time
def test_log_file_errors_say_why(body, needle):
    with pytest.raises(logfile.LogFileError, match=needle):
        list(logfile.records(io.BytesIO(body), chunk_size=5))


def test_resources_come_from_the_record_alone():
    record = {'eventSource': 'iam.amazonaws.com', 'eventName': 'CreateAccessKey',
              'requestParameters': {'userName': 'eve'},
              'responseElements': {'accessKey': {'accessKeyId': 'AKIAEXAMPLE1234567'}},
              'resources': [{'type': 'AWS::IAM::User', 'ARN': 'arn:aws:iam::1:user/eve'}]}
    assert records.resources(record) == [
        {'Type': 'AWS::IAM::User', 'Name': 'arn:aws:iam::1:user/eve'},
        {'Type': 'AWS::IAM::User', 'Name': 'eve'},
        {'Type': 'AWS::IAM::AccessKey', 'Name': 'AKIAEXAMPLE1234567'}]
    ec2 = {'eventSource': 'ec2.amazonaws.com', 'eventName': 'TerminateInstances',
           'requestParameters': {'instancesSet': {'items': [{'instanceId': 'i-1'},
                                                            {'instanceId': 'i-2'}]}}}
    assert [r['Name'] for r in records.resources(ec2)] == ['i-1', 'i-2']
    flat = {'eventSource': 'ec2.amazonaws.com', 'eventName': 'TerminateInstances',
            'requestParameters': {'instanceId.1': 'i-1'}}
    assert records.resources(flat) == [{'Type': 'AWS::EC2::Instance', 'Name': 'i-1'}]


@pytest.mark.parametrize('selectors,expected', [
    ({}, (True, True, (), ())),
    ({'EventSelectors': [{'ReadWriteType': 'WriteOnly', 'IncludeManagementEvents': True}]},
     (False, True, (), ())),
    ({'EventSelectors': [{'ReadWriteType': 'All', 'IncludeManagementEvents': True,
                          'ExcludeManagementEventSources': ['kms.amazonaws.com'],
                          'DataResources': [{'Type': 'AWS::Lambda::Function',
                                             'Values': ['arn:aws:lambda']}]}]},
     (True, True, ('kms.amazonaws.com',), ('AWS::Lambda::Function',))),
    ({'AdvancedEventSelectors': [{'FieldSelectors': [
        {'Field': 'eventCategory', 'Equals': ['Management']}]}, {'FieldSelectors': [
            {'Field': 'eventCategory', 'Equals': ['Data']},
            {'Field': 'resources.type', 'Equals': ['AWS::S3::Object']}]}]},
     (True, True, (), ('AWS::S3::Object',))),
    ({'AdvancedEventSelectors': [{'FieldSelectors': [
        {'Field': 'eventCategory', 'Equals': ['Data']},
        {'Field': 'resources.type', 'Equals': ['AWS::DynamoDB::Table']}]}]},
     (False, False, (), ())),
])
def test_what_a_trail_records(selectors, expected):
    assert sources.selector_coverage(selectors) == expected


def test_chain_depth_is_bounded():
    known = KnownPrincipals('111122223333')
    chain = suspects.Chain('111122223333', suspects.setting_keys(['AKIA0000000000000000']),
                           known, max_depth=2)

    def assume(caller, minted):
        return {'eventName': 'AssumeRole', 'userIdentity': {
            'type': 'IAMUser', 'accountId': '111122223333', 'accessKeyId': caller,
            'arn': 'arn:aws:iam::111122223333:user/u'},
            'responseElements': {'credentials': {'accessKeyId': minted}}}

    for caller, minted in (('AKIA0000000000000000', 'ASIA1'), ('ASIA1', 'ASIA2'),
                           ('ASIA2', 'ASIA3')):
        chain.observe(assume(caller, minted))
        chain.settle()
    assert chain.suspects['ASIA2'].via == ('AKIA0000000000000000', 'ASIA1', 'ASIA2')
    assert 'ASIA3' not in chain.suspects and chain.too_deep == {'ASIA3'}


# -- AWS Health and Trusted Advisor, with Stubber ---------------------------------------------

class _Session:
    def __init__(self, clients):
        self.clients = clients

    def client(self, service, region_name=None):
        return self.clients[service]


def _retry(f, **kw):
    return f(**kw)


def test_health_notices_name_the_exposed_keys():
    health = boto3.client('health', region_name='us-east-1', aws_access_key_id='x',
                          aws_secret_access_key='y')
    arn = ('arn:aws:health:global::event/IAM/AWS_RISK_CREDENTIALS_EXPOSED/'
           'AWS_RISK_CREDENTIALS_EXPOSED_ABC123')
    with Stubber(health) as stub:
        stub.add_response('describe_events', {'events': [{'arn': arn}]}, {
            'filter': {'eventTypeCodes': ['AWS_RISK_CREDENTIALS_EXPOSED']}})
        stub.add_response('describe_affected_entities', {'entities': [
            {'entityValue': 'AKIAIOSFODNN7EXAMPLE', 'eventArn': arn},
            {'entityValue': 'not a key', 'eventArn': arn}]}, {'filter': {'eventArns': [arn]}})
        keys = suspects.health_exposed_keys(_Session({'health': health}), _retry)
    assert keys == [('AKIAIOSFODNN7EXAMPLE', arn)]
    with Stubber(health) as stub:
        stub.add_client_error('describe_events', 'SubscriptionRequiredException')
        assert suspects.health_exposed_keys(_Session({'health': health}), _retry) is None


def test_trusted_advisor_flagged_keys():
    from custodian_ext.filters import advisor
    support = boto3.client('support', region_name='us-east-1', aws_access_key_id='x',
                           aws_secret_access_key='y')
    with Stubber(support) as stub:
        stub.add_response('describe_trusted_advisor_check_result', {'result': {
            'checkId': advisor.CHECK_ID, 'timestamp': '2026-11-28T09:00:00Z', 'status': 'error',
            'resourcesSummary': {'resourcesProcessed': 1, 'resourcesFlagged': 1,
                                 'resourcesIgnored': 0, 'resourcesSuppressed': 0},
            'categorySpecificSummary': {'costOptimizing': {
                'estimatedMonthlySavings': 0.0, 'estimatedPercentMonthlySavings': 0.0}},
            'flaggedResources': [{'status': 'error', 'resourceId': 'r', 'isSuppressed': False,
                                  'metadata': ['AKIAIOSFODNN7EXAMPLE', 'deploy-bot',
                                               'Exposed', '123', '2026-11-28', 'github']}]}})
        [row] = advisor.flagged_keys(support, _retry)
    assert (row['AccessKeyId'], row['UserName'], row['CaseId']) == (
        'AKIAIOSFODNN7EXAMPLE', 'deploy-bot', '123')


def test_keys_named_in_notices_are_suspects(monkeypatch):
    """Both readers together, as the review calls them: each key once, with its notice."""
    from types import SimpleNamespace

    from custodian_ext.filters import advisor
    health = boto3.client('health', region_name='us-east-1', aws_access_key_id='x',
                          aws_secret_access_key='y')
    support = boto3.client('support', region_name='us-east-1', aws_access_key_id='x',
                           aws_secret_access_key='y')
    arn = 'arn:aws:health:global::event/IAM/AWS_RISK_CREDENTIALS_EXPOSED/ABC'
    monkeypatch.setattr(suspects, 'local_session',
                        lambda factory: _Session({'health': health, 'support': support}))
    manager = SimpleNamespace(session_factory=None, retry=_retry,
                              config=SimpleNamespace(region='us-west-2'))
    notes = []
    with Stubber(health) as h, Stubber(support) as t:
        h.add_response('describe_events', {'events': [{'arn': arn}]})
        h.add_response('describe_affected_entities', {'entities': [
            {'entityValue': 'AKIAIOSFODNN7EXAMPLE', 'eventArn': arn}]})
        t.add_response('describe_trusted_advisor_check_result', {'result': {
            'checkId': advisor.CHECK_ID, 'timestamp': 't', 'status': 'error',
            'resourcesSummary': {'resourcesProcessed': 2, 'resourcesFlagged': 2,
                                 'resourcesIgnored': 0, 'resourcesSuppressed': 0},
            'categorySpecificSummary': {'costOptimizing': {
                'estimatedMonthlySavings': 0.0, 'estimatedPercentMonthlySavings': 0.0}},
            'flaggedResources': [
                {'status': 'error', 'resourceId': 'a', 'isSuppressed': False,
                 'metadata': ['AKIAIOSFODNN7EXAMPLE', 'deploy-bot', 'x', '1']},
                {'status': 'error', 'resourceId': 'b', 'isSuppressed': False,
                 'metadata': ['AKIAI44QH8DHBEXAMPLE', 'ci', 'x', '2']}]}})
        found = suspects.seeds(manager, (suspects.NOTICES,), (), notes)
    assert notes == []
    assert sorted(found) == ['AKIAI44QH8DHBEXAMPLE', 'AKIAIOSFODNN7EXAMPLE']
    assert found['AKIAIOSFODNN7EXAMPLE'].reason == \
        f'named in an AWS Health exposed-key notice ({arn})'
    assert found['AKIAI44QH8DHBEXAMPLE'].reason.startswith(
        "flagged by Trusted Advisor's Exposed Access Keys check (user ci, case 2)")


def test_notices_unreadable_on_a_basic_plan_is_a_note(aws, tmp_path):
    """The emulator has the Basic support plan: both APIs refuse, the review notes it."""
    key = user_with_key(aws, 'ci-legacy')
    start = incident_boundary()
    key_client(aws, 'ec2', key).create_key_pair(KeyName='x')
    [acct] = run(aws, X1, settings(start, suspect_access_keys=[key['AccessKeyId']]),
                 'us-east-1', tmp_path, source='event-history')
    notes = acct['c7n:activity-coverage']['Notes']
    assert any(n.startswith('AWS Health could not be read') for n in notes)
    assert any(n.startswith('Trusted Advisor could not be read') for n in notes)
    assert acct['c7n:activity-coverage']['CutShort'] == []


def test_other_accounts_assume_role_is_recorded_with_credentials(aws):
    """The emulator records AssumeRole from another account in the role's account, with the
    issued credentials (how a session of a backdoored role is traced)."""
    aws.client('iam').create_role(RoleName='r', AssumeRolePolicyDocument=TRUST_ANY_IN_ACCOUNT)
    other = new_account(aws.url)
    creds = other.client('sts').assume_role(RoleArn=f'arn:aws:iam::{aws.id}:role/r',
                                            RoleSessionName='xx')['Credentials']
    rows = aws.client('cloudtrail').lookup_events(LookupAttributes=[
        {'AttributeKey': 'EventName', 'AttributeValue': 'AssumeRole'}])['Events']
    [record] = [json.loads(r['CloudTrailEvent']) for r in rows
                if json.loads(r['CloudTrailEvent'])['userIdentity'].get('accountId') == other.id]
    assert record['userIdentity']['type'] == 'AWSAccount'
    assert records.minted_key(record) == creds['AccessKeyId']
    assert record['responseElements']['credentials']['sessionToken'] == \
        'HIDDEN_DUE_TO_SECURITY_REASONS'
