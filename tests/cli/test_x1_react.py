"""Real-time containment (policies/react): deployed by the stock `custodian`, run on AWS's notices.

Against the moto server process. `custodian run` deploys the two functions
and their EventBridge rules; moto cannot run a function, so the pack's
handler is run instead, with the sample notices of tests/data/react/ (AWS's
documented event shapes; sources in its README.md) as Lambda would call it:
once in a separate interpreter whose path holds only the function's zip and
the libraries the Lambda runtime provides, the other times in-process from
the function's config.json.
"""
import base64
import contextlib
import copy
import gzip
import json
import os
import zlib

import pytest
import yaml

from custodian_ext.actions.sessions import POLICY_NAME as REVOKE_POLICY
from custodian_ext.filters.rotation import RECORD_TAG
from custodian_ext_dev.emulator import session
from tests.support import POLICIES, REPO, client_error, inject_faults, new_account, policy_vars, \
    run_cli, run_lambda_handler, write_vars

pytestmark = pytest.mark.e2e

REACT = os.path.join(POLICIES, 'react')
DATA = os.path.join(REPO, 'tests', 'data', 'react')
HEALTH_POLICY, ADVISOR_POLICY = 'x1-react-health-exposed-key', 'x1-react-advisor-exposed-key'
ROLE = 'CustodianPackReact'
BUCKET = 'react-results'
OUTPUT = f's3://{BUCKET}/react?region=us-east-1'
TOPIC, QUEUE = 'security-alerts', 'custodian-mailer'
LAMBDA_TRUST = json.dumps({'Version': '2012-10-17', 'Statement': [{
    'Effect': 'Allow', 'Principal': {'Service': 'lambda.amazonaws.com'},
    'Action': 'sts:AssumeRole'}]})
# What the python3.11 Lambda runtime provides besides the standard library.


def sample(name, account_id, key_id, user='deploy-bot'):
    with open(os.path.join(DATA, name)) as fh:
        text = fh.read()
    text = text.replace('123456789012', account_id).replace('AKIAIOSFODNN7EXAMPLE', key_id)
    return json.loads(text.replace('"deploy-bot"', json.dumps(user)))


def trust(principal):
    return json.dumps({'Version': '2012-10-17', 'Statement': [{
        'Effect': 'Allow', 'Principal': principal, 'Action': 'sts:AssumeRole'}]})


def react_vars(account, transport='sns', **overrides):
    if transport == 'sns':
        target = {'type': 'sns', 'topic': f'arn:aws:sns:us-east-1:{account.id}:{TOPIC}'}
    else:
        target = {'type': 'sqs', 'queue': f'https://sqs.us-east-1.amazonaws.com/{account.id}/{QUEUE}'}
    values = dict(notify_transport=target, notify_to=['security@example.com'],
                  react_output=OUTPUT)
    values.update(overrides)
    return policy_vars(**values)


def prepare(account):
    """The execution role, the output bucket, and an SNS topic feeding an SQS queue."""
    account.client('iam').create_role(RoleName=ROLE, AssumeRolePolicyDocument=LAMBDA_TRUST)
    account.client('s3').create_bucket(Bucket=BUCKET)
    sqs, sns = account.client('sqs'), account.client('sns')
    queue_url = sqs.create_queue(QueueName=QUEUE)['QueueUrl']
    topic_arn = sns.create_topic(Name=TOPIC)['TopicArn']
    sns.subscribe(TopicArn=topic_arn, Protocol='sqs',
                  Endpoint=f'arn:aws:sqs:us-east-1:{account.id}:{QUEUE}')
    return queue_url


@pytest.fixture(scope='module')
def deployed(emulator, tmp_path_factory):
    tmp = tmp_path_factory.mktemp('react')
    account = new_account(emulator.url)
    queue_url = prepare(account)
    values = react_vars(account)
    vars_file = write_vars(tmp / 'vars.yml', values)
    run = run_cli(['custodian', 'run', '-s', str(tmp / 'out'), '--vars-file', vars_file, REACT,
                   '-r', 'us-east-1', '-r', 'eu-north-1'], account.env, check=0)
    return {'account': account, 'values': values, 'run': run, 'tmp': tmp, 'queue': queue_url}


def test_deploy_creates_both_functions_with_their_notice_rules(deployed):
    account = deployed['account']
    lam, events = account.client('lambda'), account.client('events')
    functions = {f['FunctionName']: f for f in lam.list_functions()['Functions']}
    assert set(functions) == {'custodian-' + HEALTH_POLICY, 'custodian-' + ADVISOR_POLICY}, \
        deployed['run'].stderr[-3000:]
    patterns = {HEALTH_POLICY: {'source': ['aws.health'], 'detail-type': ['AWS Health Event'],
                                'detail': {'eventTypeCode': ['AWS_RISK_CREDENTIALS_EXPOSED']}},
                ADVISOR_POLICY: {'source': ['aws.trustedadvisor'],
                                 'detail-type': ['Trusted Advisor Check Item Refresh Notification'],
                                 'detail': {'check-name': ['Exposed Access Keys'],
                                            'status': ['ERROR']}}}
    for policy, pattern in patterns.items():
        name = 'custodian-' + policy
        f = functions[name]
        assert (f['Runtime'], f['Handler'], f['Role'], f['Timeout']) == (
            'python3.11', 'custodian_ext.handler.run', f'arn:aws:iam::{account.id}:role/{ROLE}',
            300)
        tags = lam.list_tags(Resource=f['FunctionArn'])['Tags']
        assert tags['policy-pack'] == 'custodian-ext' and tags['policy-pack-runbook'] == 'X1'
        assert 'policy-pack-version' in tags
        assert tags['custodian-info'].startswith('mode=exposed-key-notice:')
        rule = events.describe_rule(Name=name)
        assert json.loads(rule['EventPattern']) == pattern and rule['State'] == 'ENABLED'
        assert 'ScheduleExpression' not in rule
        [target] = events.list_targets_by_rule(Rule=name)['Targets']
        assert target['Arn'] == f['FunctionArn']
        statements = json.loads(lam.get_policy(FunctionName=name)['Policy'])['Statement']
        assert any(s['Principal'] == {'Service': 'events.amazonaws.com'}
                   and s['Condition']['ArnLike']['AWS:SourceArn'] == rule['Arn']
                   for s in statements)
    # the notices arrive in us-east-1 only: nothing is deployed in the other region
    assert account.client('lambda', 'eu-north-1').list_functions()['Functions'] == []
    assert account.client('events', 'eu-north-1').list_rules()['Rules'] == []


# -- running the functions -------------------------------------------------------

def policy_data(name):
    with open(os.path.join(REACT, 'x1.yml')) as fh:
        [data] = [p for p in yaml.safe_load(fh)['policies'] if p['name'] == name]
    return data


def deployed_policy(account, values, name, region='us-east-1'):
    """The policy as `custodian run` deploys it: settings substituted, the pack's tags added."""
    import custodian_ext  # noqa: F401
    from c7n import version
    from c7n.config import Config
    from c7n.policy import Policy
    from c7n.resources import load_resources
    load_resources(('aws.iam-user',))
    policy = Policy(copy.deepcopy(policy_data(name)), Config.empty(
        region=region, account_id=account.id, output_dir='out', tracer=None))
    policy.expand_variables(policy.get_variables(dict(values)))
    mode = policy.get_execution_mode()
    mode.add_pack_tags()
    policy.data['mode']['tags']['custodian-info'] = (
        f'mode=exposed-key-notice:version={version.version}')
    return policy


def config_json(policy):
    """The function's config.json, as c7n's PolicyLambda.get_archive writes it."""
    from c7n.mu import get_exec_options
    return json.dumps({'execution-options': get_exec_options(policy.options),
                       'policies': [policy.data]}, indent=2)


@pytest.fixture
def invoke(deployed, monkeypatch, tmp_path):
    """``invoke(policy name, event, values=None)``: the pack's handler, in-process, as Lambda
    calls it."""
    import logging
    from tests.support import reset_sessions
    account = deployed['account']
    account.apply_env(monkeypatch)
    monkeypatch.setenv('HOME', str(tmp_path))
    level = logging.root.level
    import c7n.handler
    import custodian_ext.handler
    logging.root.setLevel(level)  # c7n.handler sets DEBUG for the whole process
    runs = iter(range(100))

    def run(name, event, values=None, where=None, warm=False):
        where = where or account
        if not warm:  # a cold start: c7n's handler caches config.json and sessions
            where.apply_env(monkeypatch)
            task = tmp_path / f'task-{next(runs)}'
            task.mkdir()
            (task / 'config.json').write_text(config_json(
                deployed_policy(where, values or deployed['values'], name)))
            monkeypatch.chdir(task)
            monkeypatch.setattr(c7n.handler, 'policy_config', None)
            monkeypatch.setattr(c7n.handler, 'policy_data', None)
            reset_sessions()
        run.calls = []
        with record_calls(run.calls):
            return custodian_ext.handler.run(copy.deepcopy(event), None)
    return run


@contextlib.contextmanager
def record_calls(calls):
    """Record the IAM action of every AWS API call made in this process meanwhile."""
    import botocore.client
    real = botocore.client.BaseClient._make_api_call

    def make_api_call(self, operation, params):
        calls.append(f'{self.meta.service_model.signing_name}:{operation}')
        return real(self, operation, params)
    botocore.client.BaseClient._make_api_call = make_api_call
    try:
        yield calls
    finally:
        botocore.client.BaseClient._make_api_call = real


def role_actions(values):
    from custodian_ext import react
    with open(os.path.join(REACT, 'x1.yml')) as fh:
        doc = react.execution_role_policy(yaml.safe_load(fh)['policies'], values)
    return {a for st in doc['Statement'] for a in st['Action']}


def record(account, policy, event_id, bucket=BUCKET):
    """The notice record the function wrote to its S3 output."""
    s3 = account.client('s3')
    keys = [o['Key'] for o in s3.list_objects_v2(
        Bucket=bucket, Prefix=f'react/{policy}/').get('Contents', ())]
    [key] = [k for k in keys if k.endswith(f'/notice-{event_id}.json.gz')]
    return json.loads(gzip.decompress(s3.get_object(Bucket=bucket, Key=key)['Body'].read()))


def messages(account, queue_url):
    """c7n notify messages in the queue (through SNS or not), decoded and removed."""
    sqs = account.client('sqs')
    out = []
    while True:
        got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get('Messages', [])
        if not got:
            return out
        for m in got:
            body = m['Body']
            if body.startswith('{') and '"TopicArn"' in body:
                body = json.loads(body)['Message']  # the SNS envelope
            out.append(json.loads(zlib.decompress(base64.b64decode(body))))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m['ReceiptHandle'])


def seed_user(iam, name, keys=1, status=None):
    iam.create_user(UserName=name)
    ids = [iam.create_access_key(UserName=name)['AccessKey']['AccessKeyId'] for _ in range(keys)]
    for kid in ids if status else ():
        iam.update_access_key(UserName=name, AccessKeyId=kid, Status=status)
    return ids


def key_status(iam, name):
    return {k['AccessKeyId']: k['Status']
            for k in iam.list_access_keys(UserName=name)['AccessKeyMetadata']}


def user_tags(iam, name):
    return {t['Key']: t['Value'] for t in iam.list_user_tags(UserName=name)['Tags']}


def revoked(iam, role):
    return REVOKE_POLICY in iam.list_role_policies(RoleName=role)['PolicyNames']


def test_health_notice_from_the_deployed_zip_deactivates_exactly_the_named_key(deployed, tmp_path):
    """The function's own zip, in an interpreter with only it and the Lambda runtime's libraries."""
    account = deployed['account']
    iam = account.client('iam')
    leaked, replacement = seed_user(iam, 'deploy-bot', keys=2)
    bystander = seed_user(iam, 'alice')
    iam.attach_user_policy(UserName='deploy-bot',
                           PolicyArn='arn:aws:iam::aws:policy/AWSCompromisedKeyQuarantineV2')
    user_arn = f'arn:aws:iam::{account.id}:user/deploy-bot'
    root = {'AWS': f'arn:aws:iam::{account.id}:root'}
    iam.create_role(RoleName='ci-deployer', AssumeRolePolicyDocument=trust({'AWS': user_arn}))
    iam.create_role(RoleName='ops-admin', AssumeRolePolicyDocument=trust(root))
    iam.create_role(RoleName='audit', AssumeRolePolicyDocument=trust(root))
    iam.create_role(RoleName='batch', AssumeRolePolicyDocument=trust(
        {'Service': 'lambda.amazonaws.com'}))
    iam.put_user_policy(UserName='deploy-bot', PolicyName='assume-ops', PolicyDocument=json.dumps({
        'Version': '2012-10-17', 'Statement': [{'Effect': 'Allow', 'Action': 'sts:AssumeRole',
                                                'Resource':
                                                   f'arn:aws:iam::{account.id}:role/ops-*'}]}))
    event = sample('health-exposed-key.json', account.id, leaked)

    policy = deployed_policy(account, deployed['values'], HEALTH_POLICY)
    archive = policy.get_execution_mode().policy_lambda(policy).get_archive()
    deployed_sha = account.client('lambda').get_function(
        FunctionName='custodian-' + HEALTH_POLICY)['Configuration']['CodeSha256']
    assert archive.get_checksum() == deployed_sha  # byte for byte what was deployed
    run_lambda_handler(archive.get_bytes(), event, account.env, tmp_path)

    # exactly the named key; the user's other key, other users and AWS's marker untouched
    assert key_status(iam, 'deploy-bot') == {leaked: 'Inactive', replacement: 'Active'}
    assert key_status(iam, 'alice') == {bystander[0]: 'Active'}
    assert [p['PolicyArn'] for p in iam.list_attached_user_policies(
        UserName='deploy-bot')['AttachedPolicies']] == [
        'arn:aws:iam::aws:policy/AWSCompromisedKeyQuarantineV2']
    tags = user_tags(iam, 'deploy-bot')
    assert RECORD_TAG in tags and leaked in tags[RECORD_TAG] and replacement not in tags[RECORD_TAG]
    assert (tags['custodian-ext:x1-notice-source'], tags['custodian-ext:x1-notice-id'],
            tags['custodian-ext:x1-notice-time']) == ('aws.health', event['id'], event['time'])
    assert tags['custodian-ext:x1-notice-ref'] == event['detail']['eventArn']
    assert user_tags(iam, 'alice') == {}
    # the roles the user may assume: named in the trust, or trusting the account + allowed
    assert {r: revoked(iam, r) for r in ('ci-deployer', 'ops-admin', 'audit', 'batch')} == {
        'ci-deployer': True, 'ops-admin': True, 'audit': False, 'batch': False}
    # the notification, through SNS
    [message] = messages(account, deployed['queue'])
    assert message['policy']['name'] == HEALTH_POLICY and message['event']['id'] == event['id']
    assert message['action']['to'] == ['security@example.com']
    [user] = message['resources']
    assert user['UserName'] == 'deploy-bot'
    assert [k['AccessKeyId'] for k in user['c7n:matched-keys']] == [leaked]
    assert {r['action']: r['status'] for r in user['c7n:action-results']} == {
        'deactivate-access-keys': 'done', 'tag-notice': 'done',
        'revoke-assumable-role-sessions': 'done'}
    # what was done, in the function's output
    rec = record(account, HEALTH_POLICY, event['id'])
    assert (rec['outcome'], rec['reason']) == ('contained', f'deactivated {leaked}')
    assert rec['keys'] == [{'key': leaked, 'user': 'deploy-bot', 'outcome': 'deactivated'}]
    assert rec['notice']['reference'] == event['detail']['eventArn']


def test_advisor_notice_with_an_sqs_transport(deployed, invoke, capsys):
    account = deployed['account']
    iam = account.client('iam')
    leaked, other = seed_user(iam, 'ta-bot', keys=2)
    iam.create_role(RoleName='ta-deployer', AssumeRolePolicyDocument=trust(
        {'AWS': f'arn:aws:iam::{account.id}:user/ta-bot'}))
    event = sample('advisor-exposed-key.json', account.id, leaked, user='ta-bot')

    values = react_vars(account, transport='sqs')
    assert invoke(ADVISOR_POLICY, event, values) is True
    # every call the function made is in the execution role policy the pack writes
    assert set(invoke.calls) - role_actions(values) == set()
    assert {'iam:UpdateAccessKey', 'iam:TagUser', 'iam:PutRolePolicy', 'sqs:SendMessage',
            's3:PutObject'} <= set(invoke.calls)

    assert key_status(iam, 'ta-bot') == {leaked: 'Inactive', other: 'Active'}
    assert user_tags(iam, 'ta-bot')['custodian-ext:x1-notice-source'] == 'aws.trustedadvisor'
    assert user_tags(iam, 'ta-bot')['custodian-ext:x1-notice-ref'] == \
        event['detail']['check-item-detail']['Case ID']
    assert revoked(iam, 'ta-deployer')
    [message] = messages(account, deployed['queue'])  # straight to SQS this time
    assert message['policy']['name'] == ADVISOR_POLICY
    assert [u['UserName'] for u in message['resources']] == ['ta-bot']
    rec = record(account, ADVISOR_POLICY, event['id'])
    assert rec['outcome'] == 'contained'
    assert rec['keys'] == [{'key': leaked, 'user': 'ta-bot', 'outcome': 'deactivated'}]
    # the incident report reads the function's output as a respond run
    from custodian_ext.cli import main
    capsys.readouterr()
    assert main(['report', f's3://{BUCKET}/react/{ADVISOR_POLICY}', '--format', 'json',
                 '-o', '-']) == 0
    doc = json.loads(capsys.readouterr().out)
    assert {(c['policy'], c['resource_id'], c['action'], c['status']) for c in doc['contained']
            if c['policy'] == ADVISOR_POLICY} >= {
        (ADVISOR_POLICY, 'ta-bot', 'deactivate-access-keys', 'done'),
        (ADVISOR_POLICY, 'ta-bot', 'tag-notice', 'done')}


def _nothing_changed(iam, account, deployed, users):
    for name, keys in users.items():
        assert set(key_status(iam, name).values()) == {keys}, name
        assert user_tags(iam, name) == {}, name
    assert messages(account, deployed['queue']) == []


def test_malformed_notices_are_reported_and_change_nothing(deployed, invoke):
    account = deployed['account']
    iam = account.client('iam')
    [kid] = seed_user(iam, 'malformed-bot')
    good = sample('health-exposed-key.json', account.id, kid)
    no_entities = copy.deepcopy(good)
    no_entities['id'] = 'no-entities'
    no_entities['detail']['affectedEntities'] = []
    not_a_key = copy.deepcopy(good)
    not_a_key['id'] = 'not-a-key'
    not_a_key['detail']['affectedEntities'] = [{'entityValue': 'malformed-bot'}]
    other_type = copy.deepcopy(good)
    other_type['id'] = 'other-type'
    other_type['detail']['eventTypeCode'] = 'AWS_EC2_OPERATIONAL_ISSUE'
    for event, reason in ((no_entities, 'detail.affectedEntities names no access key'),
                          (not_a_key, "'malformed-bot' is not an access key id"),
                          (other_type, "'AWS_EC2_OPERATIONAL_ISSUE' is not AWS_RISK_CREDENTIALS")):
        assert invoke(HEALTH_POLICY, event) is True
        rec = record(account, HEALTH_POLICY, event['id'])
        assert rec['outcome'] == 'rejected' and reason in rec['reason'], rec
    _nothing_changed(iam, account, deployed, {'malformed-bot': 'Active'})


def test_unknown_keys_and_users_are_reported_and_change_nothing(deployed, invoke):
    account = deployed['account']
    iam = account.client('iam')
    [mine] = seed_user(iam, 'owner-bot')
    [theirs] = seed_user(iam, 'other-bot')
    elsewhere = new_account(account.url)  # a key of another account
    [foreign] = seed_user(elsewhere.client('iam'), 'owner-bot')
    cases = [
        (HEALTH_POLICY, sample('health-exposed-key.json', account.id, 'AKIA0000000000000000'),
         [{'key': 'AKIA0000000000000000', 'user': None, 'outcome': 'unknown-key',
           'reason': f'no access key AKIA0000000000000000 in account {account.id}'}]),
        (HEALTH_POLICY, sample('health-exposed-key.json', account.id, foreign),
         None),  # moto finds keys across accounts; the user's own key list does not have it
        (ADVISOR_POLICY, sample('advisor-exposed-key.json', account.id, theirs, user='owner-bot'),
         [{'key': theirs, 'user': 'owner-bot', 'outcome': 'not-owned',
           'reason': f'owner-bot has no access key {theirs}'}]),
        (ADVISOR_POLICY, sample('advisor-exposed-key.json', account.id, mine, user='nobody'),
         [{'key': mine, 'user': 'nobody', 'outcome': 'unknown-user',
           'reason': f'no IAM user nobody in account {account.id}'}]),
        (ADVISOR_POLICY,
         sample('advisor-exposed-key.json', account.id, mine, user='<root_account>'),
         [{'key': mine, 'user': '<root_account>', 'outcome': 'root-key',
           'reason': 'a root user access key: only the root user can deactivate it (X2); '
                     'sign in as root and delete it now'}]),
    ]
    for i, (policy, event, keys) in enumerate(cases):
        event['id'] = f'unknown-{i}'
        assert invoke(policy, event) is True
        rec = record(account, policy, event['id'])
        assert rec['outcome'] == 'nothing-changed', rec
        if keys is not None:
            assert rec['keys'] == keys
        else:
            [entry] = rec['keys']
            assert entry['key'] == foreign and entry['outcome'] in ('unknown-key', 'unknown-user')
    _nothing_changed(iam, account, deployed, {'owner-bot': 'Active', 'other-bot': 'Active'})
    assert set(key_status(elsewhere.client('iam'), 'owner-bot').values()) == {'Active'}


def test_an_already_inactive_key_is_reported_and_changes_nothing(deployed, invoke):
    account = deployed['account']
    iam = account.client('iam')
    [kid] = seed_user(iam, 'rotated-bot', status='Inactive')
    iam.create_role(RoleName='rotated-deployer', AssumeRolePolicyDocument=trust(
        {'AWS': f'arn:aws:iam::{account.id}:user/rotated-bot'}))
    event = sample('health-exposed-key.json', account.id, kid)
    event['id'] = 'inactive'
    assert invoke(HEALTH_POLICY, event) is True
    rec = record(account, HEALTH_POLICY, 'inactive')
    assert rec['outcome'] == 'nothing-changed'
    assert rec['keys'] == [{'key': kid, 'user': 'rotated-bot', 'outcome': 'already-inactive',
                            'reason': 'already Inactive; nothing to do'}]
    _nothing_changed(iam, account, deployed, {'rotated-bot': 'Inactive'})
    assert not revoked(iam, 'rotated-deployer')


def test_a_failed_deactivation_is_still_notified_and_fails_the_invocation(deployed, invoke,
                                                                         monkeypatch):
    account = deployed['account']
    iam = account.client('iam')
    [kid] = seed_user(iam, 'stuck-bot')
    event = sample('health-exposed-key.json', account.id, kid)
    event['id'] = 'stuck'

    def deny(params, call):
        raise client_error('AccessDenied', 'UpdateAccessKey', 'not authorized')
    inject_faults(monkeypatch, UpdateAccessKey=deny)
    with pytest.raises(Exception, match='deactivate-access-keys failed for 1 of 1'):
        invoke(HEALTH_POLICY, event)

    assert key_status(iam, 'stuck-bot') == {kid: 'Active'}
    [message] = messages(account, deployed['queue'])  # the responder hears about it
    [res] = message['resources'][0]['c7n:action-results']
    assert (res['action'], res['status']) == ('deactivate-access-keys', 'failed')
    rec = record(account, HEALTH_POLICY, 'stuck')
    assert rec['outcome'] == 'failed' and 'deactivate-access-keys failed' in rec['reason']
    assert rec['keys'][0]['outcome'] == 'not-deactivated'
    assert 'tag-notice' not in json.dumps(rec['actions'])  # nothing after the failure but notify


def test_organization_notice_in_the_management_account_acts_in_the_member(deployed, invoke,
                                                                           emulator):
    """Health's organizational view: the event reaches the management account, names the member."""
    mgmt = new_account(emulator.url)
    org = mgmt.client('organizations')
    org.create_organization(FeatureSet='ALL')
    member_id = org.create_account(AccountName='payments', Email='payments@example.com')[
        'CreateAccountStatus']['AccountId']
    member_iam = session(emulator.url, member_id).client('iam')
    leaked, other = seed_user(member_iam, 'deploy-bot', keys=2)
    member_iam.create_role(RoleName='ci-deployer', AssumeRolePolicyDocument=trust(
        {'AWS': f'arn:aws:iam::{member_id}:user/deploy-bot'}))
    mgmt.client('s3').create_bucket(Bucket=BUCKET + '-org')
    queue_url = mgmt.client('sqs').create_queue(QueueName=QUEUE)['QueueUrl']
    event = sample('health-exposed-key.json', mgmt.id, leaked)
    event['detail']['affectedAccount'] = member_id

    # deployed without react_member_role: the notice is for another account, refused
    values = react_vars(mgmt, transport='sqs', react_output=f's3://{BUCKET}-org/react?region=us-east-1')
    event['id'] = 'org-refused'
    assert invoke(HEALTH_POLICY, event, values, where=mgmt) is True
    rec = record(mgmt, HEALTH_POLICY, 'org-refused', bucket=BUCKET + '-org')
    assert rec['outcome'] == 'rejected' and rec['reason'] == (
        f'the notice is for account {member_id}; this function acts only in its own account '
        f'{mgmt.id} (set react_member_role to act in the organization\'s accounts)')
    assert key_status(member_iam, 'deploy-bot') == {leaked: 'Active', other: 'Active'}

    values['react_member_role'] = 'OrganizationAccountAccessRole'
    event['id'] = 'org-contained'
    assert invoke(HEALTH_POLICY, event, values, where=mgmt) is True
    assert set(invoke.calls) - role_actions(values) == set()
    assert {'sts:AssumeRole', 'iam:GetAccessKeyLastUsed'} <= set(invoke.calls)
    assert key_status(member_iam, 'deploy-bot') == {leaked: 'Inactive', other: 'Active'}
    assert revoked(member_iam, 'ci-deployer')
    rec = record(mgmt, HEALTH_POLICY, 'org-contained', bucket=BUCKET + '-org')
    assert (rec['outcome'], rec['account']) == ('contained', member_id)
    # notified from the function's own account, into the management account's queue
    [message] = messages(mgmt, queue_url)
    assert message['account_id'] == member_id
    assert [u['UserName'] for u in message['resources']] == ['deploy-bot']

    # the same warm container, next: a notice for the management account's own key
    mgmt_iam = mgmt.client('iam')
    [own] = seed_user(mgmt_iam, 'deploy-bot')
    own_event = sample('health-exposed-key.json', mgmt.id, own)
    own_event['id'] = 'org-own'
    assert invoke(HEALTH_POLICY, own_event, warm=True) is True
    assert 'sts:AssumeRole' not in invoke.calls  # back in its own account, as itself
    assert key_status(mgmt_iam, 'deploy-bot') == {own: 'Inactive'}
    assert key_status(member_iam, 'deploy-bot') == {leaked: 'Inactive', other: 'Active'}
    rec = record(mgmt, HEALTH_POLICY, 'org-own', bucket=BUCKET + '-org')
    assert (rec['outcome'], rec['account']) == ('contained', mgmt.id)


def test_a_deploy_that_could_not_work_is_refused_in_one_line(emulator, tmp_path):
    """No transport, no execution role, a region AWS sends no notice to: nothing deploys."""
    account = new_account(emulator.url)

    def deploy(values, *regions):
        vars_file = write_vars(tmp_path / 'vars.yml', values)
        cmd = ['custodian', 'run', '-s', str(tmp_path / 'out'), '--vars-file', vars_file, REACT]
        for r in regions:
            cmd += ['-r', r]
        proc = run_cli(cmd, account.env, check=1)
        return [ln for ln in proc.stderr.splitlines() if ln.strip()]

    assert deploy(react_vars(account), 'us-east-1') == [
        f"custodian: error: policy x1-react-health-exposed-key: the execution role "
        f"arn:aws:iam::{account.id}:role/{ROLE} does not exist in account {account.id}; create "
        f"it first (README: Real-time containment lists its permissions), nothing was deployed"]
    account.client('iam').create_role(RoleName=ROLE, AssumeRolePolicyDocument=LAMBDA_TRUST)
    assert deploy(policy_vars(), 'us-east-1') == [  # the shipped vars: no transport
        "custodian: error: policy x1-react-health-exposed-key: notify_transport is not set; the "
        "react functions notify through it. Add to policies/vars.yml: notify_transport: "
        "{type: sns, topic: 'arn:aws:sns:us-east-1:123456789012:security-alerts'}"]
    assert deploy(react_vars(account, global_region='eu-west-1'), 'eu-west-1', 'us-east-1') == [
        "custodian: error: policy x1-react-health-exposed-key: AWS sends health notices about IAM "
        "keys to us-east-1 and us-west-2, so a function in eu-west-1 would never run; deploy it "
        "in us-east-1 (global_region: us-east-1)"]
    for region in ('us-east-1', 'eu-west-1'):
        assert account.client('lambda', region).list_functions()['Functions'] == []
