"""The exposed-key-notice mode's checks, and how the pack picks the roles whose sessions it revokes.

In-process, no emulator: these are the refusals that stop a react function
from deploying in a form that could not work, and the trust/identity policy
reading of ``revoke-assumable-role-sessions``.
"""
import copy
import json
import os
import re

import pytest
import yaml
from c7n.exceptions import PolicyExecutionError, PolicyValidationError

from custodian_ext import settings
from custodian_ext.actions.assumable import ACCOUNT, USER, allows, trust_grant
from custodian_ext.actions.notice import notice_tags, tag_value
from custodian_ext.errors import PackError
from tests.support import POLICIES, policy_vars

ACCOUNT_ID = '111122223333'
USER_ARN = f'arn:aws:iam::{ACCOUNT_ID}:user/ci/deploy-bot'
ROLE_ARN = f'arn:aws:iam::{ACCOUNT_ID}:role/ops/ops-admin'

with open(os.path.join(POLICIES, 'react', 'x1.yml')) as fh:
    REACT = {p['name']: p for p in yaml.safe_load(fh)['policies']}
HEALTH = REACT['x1-react-health-exposed-key']

TRANSPORT = {'type': 'sns', 'topic': f'arn:aws:sns:us-east-1:{ACCOUNT_ID}:alerts'}


def policy(data=HEALTH, region='us-east-1', **values):
    import custodian_ext  # noqa: F401
    from c7n.config import Config
    from c7n.policy import Policy
    from c7n.resources import load_resources
    load_resources(('aws.iam-user',))
    p = Policy(copy.deepcopy(data), Config.empty(region=region, account_id=ACCOUNT_ID))
    variables = policy_vars(**dict({'notify_transport': TRANSPORT}, **values))
    p.expand_variables(p.get_variables(variables))
    return p


def test_shipped_react_policies_validate_with_a_transport():
    for data in REACT.values():
        policy(data).validate()


def test_no_notify_transport_refuses_in_one_line():
    with pytest.raises(settings.SettingsError) as e:
        policy(notify_transport={}).validate()
    assert str(e.value) == (
        "policy x1-react-health-exposed-key: notify_transport is not set; the react functions "
        "notify through it. Add to policies/vars.yml: notify_transport: {type: sns, topic: "
        "'arn:aws:sns:us-east-1:123456789012:security-alerts'}")


@pytest.mark.parametrize('change,message', [
    (lambda d: d['mode'].update(handler='custodian_policy.run'),
     'needs handler: custodian_ext.handler.run and packages: [custodian_ext, yaml]'),
    (lambda d: d['mode'].update(packages=['custodian_ext']),
     'needs handler: custodian_ext.handler.run and packages: [custodian_ext, yaml]'),
    (lambda d: d.update(filters=[{'type': 'access-key', 'key': 'Status', 'value': 'Active'}]),
     'needs the exposed-key filter'),
    (lambda d: d['mode'].update({'member-role': 'arn:aws:iam::{account_id}:role/x'}),
     "c7n's member-role assumes into the event's account"),
    (lambda d: d.update(resource='aws.iam-role', actions=[], filters=[]),
     'acts on aws.iam-user only'),
])
def test_a_react_policy_that_could_not_work_is_refused(change, message):
    data = copy.deepcopy(HEALTH)
    change(data)
    with pytest.raises(PolicyValidationError, match=re.escape(message)):
        policy(data).validate()


def test_exposed_key_filter_only_in_the_react_mode_and_only_on_an_event():
    data = {'name': 'x1-sweep', 'resource': 'aws.iam-user', 'filters': ['exposed-key']}
    with pytest.raises(PolicyValidationError, match='must use mode exposed-key-notice'):
        policy(data).validate()
    p = policy()
    [f] = p.resource_manager.filters
    with pytest.raises(PolicyExecutionError, match='no AWS notice to read'):
        f.process([{'UserName': 'deploy-bot'}], None)


@pytest.mark.parametrize('name,region,ok', [
    ('x1-react-health-exposed-key', 'us-east-1', True),
    ('x1-react-health-exposed-key', 'us-west-2', True),  # Health's backup copy of IAM events
    ('x1-react-health-exposed-key', 'eu-west-1', False),
    ('x1-react-advisor-exposed-key', 'us-west-2', False),
    ('x1-react-health-exposed-key', 'us-gov-west-1', True),  # other partitions: not checked
])
def test_deploying_where_aws_never_delivers_the_notice_is_refused(name, region, ok):
    mode = policy(REACT[name], region=region, global_region=region).get_execution_mode()
    if ok:
        mode.check_region()
        return
    with pytest.raises(PackError, match=f'a function in {region} would never run'):
        mode.check_region()


def permissions(p):
    return p.get_permissions() | set(p.get_execution_mode().get_permissions())


def test_execution_role_needs_assume_role_only_with_a_member_role():
    assert 'sts:AssumeRole' not in permissions(policy())
    perms = permissions(policy(react_member_role='OrganizationAccountAccessRole'))
    assert {'sts:AssumeRole', 'iam:GetAccessKeyLastUsed', 'iam:ListAccessKeys',
            'iam:UpdateAccessKey', 'iam:TagUser', 'iam:PutRolePolicy', 'sns:Publish'} <= perms


def test_react_settings_are_checked():
    good = settings.validate({'notify_transport': {'type': 'sqs', 'queue': 'custodian-mailer'},
                              'react_member_role': '/org/OrganizationAccountAccessRole'},
                             names=['notify_transport', 'react_member_role'])
    assert good['react_member_role'] == 'org/OrganizationAccountAccessRole'
    for key, value, message in [
            ('notify_transport', {'type': 'email', 'to': 'x'}, 'expected {type: sns'),
            ('notify_transport', {'type': 'sns', 'queue': 'q'}, 'unexpected queue'),
            ('notify_transport', {'type': 'sqs', 'queue': 'https://x/y z'}, 'not an SQS queue'),
            ('notify_transport', {'type': 'sns', 'topic': 'a', 'attributes': {'mtype': 'x'}},
             "without 'mtype'"),
            ('react_role', 'arn:aws:iam::111122223333:role/r', 'not an IAM role name'),
            ('react_output', '/tmp/out', 'Lambda functions write to S3'),
            ('notify_to', 'security@example.com', 'expected a list of recipients')]:
        with pytest.raises(settings.SettingsError, match=message):
            settings.validate({key: value}, names=[key])


def doc(*statements):
    return {'Version': '2012-10-17', 'Statement': list(statements)}


def stmt(principal=None, action='sts:AssumeRole', effect='Allow', **extra):
    s = {'Effect': effect, 'Action': action, **extra}
    if principal is not None:
        s['Principal'] = principal
    return s


@pytest.mark.parametrize('trust,expected', [
    (doc(stmt({'AWS': USER_ARN})), USER),
    (doc(stmt({'AWS': [f'arn:aws:iam::{ACCOUNT_ID}:user/other', USER_ARN]})), USER),
    (doc(stmt({'AWS': f'arn:aws:iam::{ACCOUNT_ID}:root'})), ACCOUNT),
    (doc(stmt({'AWS': ACCOUNT_ID})), ACCOUNT),
    (doc(stmt('*')), ACCOUNT),
    (doc(stmt({'AWS': USER_ARN}, action='sts:*')), USER),
    (doc(stmt({'AWS': USER_ARN}, action='sts:TagSession')), None),
    (doc(stmt({'AWS': USER_ARN}, effect='Deny')), None),
    (doc(stmt({'AWS': 'arn:aws:iam::444455556666:root'})), None),  # another account
    (doc(stmt({'Service': 'lambda.amazonaws.com'})), None),
    (json.dumps(doc(stmt({'AWS': USER_ARN}))), USER),  # as a JSON string
])
def test_trust_grant(trust, expected):
    assert trust_grant(trust, USER_ARN, ACCOUNT_ID) == expected


@pytest.mark.parametrize('statement,expected', [
    (stmt(Resource=ROLE_ARN), True),
    (stmt(Resource='*'), True),
    (stmt(Resource=f'arn:aws:iam::{ACCOUNT_ID}:role/ops/*'), True),
    (stmt(Resource=f'arn:aws:iam::{ACCOUNT_ID}:role/dev/*'), False),
    (stmt(action='*', Resource='*'), True),
    (stmt(action=['s3:*', 'STS:Assume*'], Resource=ROLE_ARN), True),
    (stmt(action='sts:AssumeRoleWithSAML', Resource='*'), False),
    (stmt(effect='Deny', Resource='*'), False),
    ({'Effect': 'Allow', 'NotAction': 'iam:*', 'Resource': '*'}, True),
    ({'Effect': 'Allow', 'NotAction': 'sts:*', 'Resource': '*'}, False),
    ({'Effect': 'Allow', 'Action': 'sts:AssumeRole', 'NotResource': ROLE_ARN}, False),
    ({'Effect': 'Allow', 'Action': 'sts:AssumeRole', 'NotResource': 'arn:aws:s3:::*'}, True),
])
def test_identity_statement_allows_assume_role(statement, expected):
    assert allows(statement, ROLE_ARN) is expected


def test_notice_tags_are_valid_iam_tag_values():
    tags = notice_tags({'kind': 'health', 'event_id': 'e1', 'time': '2026-11-28T09:41:07Z',
                        'reference': 'arn:aws:health:global::event/RISK/X/Y'})
    assert {t['Key']: t['Value'] for t in tags} == {
        'custodian-ext:x1-notice-source': 'aws.health', 'custodian-ext:x1-notice-id': 'e1',
        'custodian-ext:x1-notice-time': '2026-11-28T09:41:07Z',
        'custodian-ext:x1-notice-ref': 'arn:aws:health:global::event/RISK/X/Y'}
    assert tag_value('a<b>c' + 'x' * 300) == 'a_b_c' + 'x' * 251


def test_readme_lists_every_permission_of_the_execution_role():
    from custodian_ext import react
    from tests.support import REPO
    with open(os.path.join(REPO, 'README.md')) as fh:
        readme = fh.read()
    section = readme.split('## Real-time containment (policies/react)', 1)[1].split('\n## ', 1)[0]
    needed = set()
    for transport in (TRANSPORT, {'type': 'sqs', 'queue': 'custodian-mailer'}):
        values = policy_vars(notify_transport=transport, react_member_role='Responder',
                             react_output='s3://audit/react?region=us-east-1')
        doc = react.execution_role_policy(list(REACT.values()), values)
        needed |= {a for s in doc['Statement'] for a in s['Action']}
    assert {'sns:Publish', 'sqs:SendMessage', 'sts:AssumeRole', 's3:PutObject'} <= needed
    for action in needed:
        assert f'`{action}`' in section, action


def test_schema_check_sees_example_settings_where_a_mapping_goes():
    """c7n checks the schema before substituting settings; transport: '{notify_transport}'
    passes."""
    from c7n import schema
    from custodian_ext import patches
    patches.install('lambda')
    assert schema.validate({'policies': [HEALTH]}, resource_types=('aws.iam-user',)) == []
    bad = copy.deepcopy(HEALTH)
    bad['actions'][-1]['transport'] = 'sns:alerts'  # not a setting: still checked
    assert schema.validate({'policies': [bad]}, resource_types=('aws.iam-user',))


def test_react_role_policy_command(tmp_path, capsys):
    from custodian_ext.cli import main
    from tests.support import write_vars
    vars_file = write_vars(tmp_path / 'vars.yml', policy_vars(notify_transport=TRANSPORT))
    out = tmp_path / 'build' / 'role.json'
    assert main(['react-role-policy', os.path.join(POLICIES, 'react'), '--vars-file', vars_file,
                 '-o', str(out)]) == 0
    doc = json.loads(out.read_text())
    [main_statement] = doc['Statement']
    assert {'iam:UpdateAccessKey', 'sns:Publish', 'iam:ListAccountAliases'} <= set(
        main_statement['Action'])
    assert main(['react-role-policy', '--vars-file', str(tmp_path / 'missing.yml')]) == 1
    assert 'vars file not found' in capsys.readouterr().err
