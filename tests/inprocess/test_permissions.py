"""``custodian-ext permissions``: the IAM policy the pack's policies need, checked against botocore.

In-process: the command reads policy files and botocore's service models and
makes no AWS call. That the generated policies are enough, and that every
permission is needed, is tested against an emulator enforcing IAM in
tests/cli/test_least_privilege.py and tests/cli/test_missing_permissions.py.
"""
import copy
import json
import os

import pytest
import yaml

from custodian_ext import permissions
from custodian_ext.cli import main
from custodian_ext.errors import PackError
from tests.support import POLICIES, REPO

FOLDERS = ('detect', 'respond', 'recover', 'react')


def folder(name):
    return os.path.join(POLICIES, name)


def policy_file(tmp_path, *policies):
    path = tmp_path / 'p.yml'
    path.write_text(yaml.safe_dump({'policies': list(policies)}))
    return str(path)


@pytest.mark.parametrize('name', FOLDERS)
def test_each_folder_gives_one_valid_document(name, capsys):
    assert main(['permissions', folder(name)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc['Version'] == '2012-10-17'
    prefixes = [st['Action'][0].split(':')[0] for st in doc['Statement']]
    assert prefixes == sorted(prefixes) and len(set(prefixes)) == len(prefixes)
    for st in doc['Statement']:
        assert st['Effect'] == 'Allow' and st['Resource'] == '*'
        assert st['Action'] == sorted(set(st['Action']))
        assert {a.split(':')[0] for a in st['Action']} == {st['Action'][0].split(':')[0]}
        for action in st['Action']:
            assert permissions.check_action(action) is None, action
    assert permissions.size(doc) <= permissions.MANAGED_POLICY_LIMIT


def test_all_folders_together_fit_one_managed_policy():
    actions, outputs = permissions.required([folder(n) for n in FOLDERS])
    doc = permissions.document(actions, outputs)
    assert permissions.size(doc) <= permissions.MANAGED_POLICY_LIMIT


@pytest.mark.parametrize('action,hint', [
    ('ec2:DescribeInstance', 'did you mean ec2:DescribeInstances?'),
    ('iam:listusers', 'did you mean iam:ListUsers?'),
    ('tagging:GetResources', "no botocore service model for the IAM prefix 'tagging'"),
    ('s3:GetBucketReplication', 'IAM names its permission s3:GetReplicationConfiguration'),
    ('DescribeInstances', 'is not an IAM action'),
])
def test_a_misspelt_permission_fails_in_one_line(action, hint, monkeypatch, capsys):
    data = copy.deepcopy(permissions.data())
    data['corrections'].append({'resource': 'aws.ec2', 'add': [action], 'why': 'test'})
    monkeypatch.setattr(permissions, 'data', lambda: data)
    assert main(['permissions', os.path.join(folder('detect'), 'x6.yml')]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and action in err[0] and hint in err[0], err
    assert 'x6-' in err[0]  # names a policy that declares it


@pytest.mark.parametrize('action', [
    'tag:GetResources', 'cloudwatch:DescribeAlarms', 'kms:ReEncrypt*', 'iam:PassRole',
    's3:GetReplicationConfiguration', 'sagemaker:ListTags', 'elasticloadbalancing:DescribeTags',
    'states:ListStateMachines', 'lambda:InvokeFunction'])
def test_real_actions_whose_names_differ_from_botocore_pass(action):
    assert permissions.check_action(action) is None


def test_the_data_file_holds_only_what_botocore_cannot_tell():
    data = permissions.data()
    for entry in data['corrections']:
        assert entry['add'] and entry['why']
        assert all(permissions.check_action(a) is None for a in entry['add']), entry
    for entry in data['unused']:
        assert entry['remove'] and entry['why']
        assert all(permissions.check_action(a) is None for a in entry['remove']), entry
    for prefix, services in data['prefixes'].items():
        assert permissions.services_for(prefix) == services, prefix
    for prefix, names in data['iam-only'].items():
        services = permissions.services_for(prefix)
        assert services, prefix
        operations = {op for s in services for op in permissions._metadata(s)[1]}
        assert not set(names) & operations, (prefix, set(names) & operations)


def test_renamed_operations_name_real_actions():
    """The names the emulator gives the requests it checks (iam_auth.py) are real actions."""
    names = permissions.data()
    for table in ('renamed', 'versioned'):
        for prefix, ops in names[table].items():
            for op, actions in ops.items():
                for a in actions if isinstance(actions, list) else [actions]:
                    assert permissions.check_action(f'{prefix}:{a}') is None, (prefix, op, a)


def test_nested_filters_undeclared_calls_and_the_mode_count(tmp_path):
    path = policy_file(
        tmp_path,
        {'name': 'nested', 'resource': 'aws.lambda',
         'filters': [{'or': [{'type': 'cross-account'}, {'not': [{'type': 'value',
                                                                  'key': 'Runtime',
                                                                  'value': 'x'}]}]}]},
        {'name': 'layers', 'resource': 'aws.lambda-layer'})
    by_policy = permissions.by_policy([path])
    # c7n's Policy.get_permissions leaves out filters inside or/and/not
    assert 'lambda:GetPolicy' in by_policy['nested']
    # c7n's aws.lambda-layer lists versions without declaring it
    assert 'lambda:ListLayerVersions' in by_policy['layers']
    # every run calls GetCallerIdentity; functions' tags come from the tagging API
    assert 'sts:GetCallerIdentity' in by_policy['nested']
    assert 'lambda:ListTags' not in by_policy['nested']
    react = permissions.by_policy([folder('react')])['x1-react-health-exposed-key']
    assert {'iam:GetAccessKeyLastUsed',  # the mode's
            'iam:ListAccountAliases',    # notify's, undeclared by c7n
            'logs:PutLogEvents'} <= set(react)  # the function's logs


def test_s3_needs_only_the_details_the_policy_fetches(tmp_path):
    path = policy_file(
        tmp_path,
        {'name': 'policy-only', 'resource': 'aws.s3', 'query': [{'augment-keys': ['Policy']}]},
        {'name': 'everything', 'resource': 'aws.s3'})
    by_policy = permissions.by_policy([path])
    assert set(by_policy['policy-only']) == {
        's3:ListAllMyBuckets', 's3:GetBucketLocation', 's3:GetBucketTagging',
        's3:GetBucketPolicy', 'sts:GetCallerIdentity'}
    assert {'s3:GetBucketAcl', 's3:GetLifecycleConfiguration',
            's3:GetReplicationConfiguration'} <= set(by_policy['everything'])


def test_check_cloudtrail_counts_only_what_its_options_read(tmp_path):
    base = {'resource': 'aws.account', 'filters': [{'type': 'check-cloudtrail'}]}
    running = dict(base, name='running')
    stopped = dict(copy.deepcopy(base), name='stopped')
    stopped['filters'][0]['running'] = False
    by_policy = permissions.by_policy([policy_file(tmp_path, running, stopped)])
    assert 'cloudtrail:GetTrailStatus' in by_policy['running']
    assert 'cloudtrail:GetTrailStatus' not in by_policy['stopped']
    assert not {'logs:DescribeMetricFilters', 'sns:GetTopicAttributes'} & set(
        by_policy['running'])


def test_past_the_managed_policy_limit_it_refuses_or_splits(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(permissions, 'MANAGED_POLICY_LIMIT', 900)
    assert main(['permissions', folder('detect')]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "over the 900 a managed policy holds: add --split" in err[0], err
    out = tmp_path / 'split'
    assert main(['permissions', folder('detect'), '--split', '-o', str(out)]) == 0
    docs = [json.loads(p.read_text()) for p in sorted(out.glob('policy-*.json'))]
    assert len(docs) > 1 and all(permissions.size(d) <= 900 for d in docs)
    actions, _ = permissions.required([folder('detect')])
    assert {a for d in docs for st in d['Statement'] for a in st['Action']} == set(actions)
    sids = [st['Sid'] for d in docs for st in d['Statement']]
    assert len(sids) == len(set(sids))


def test_policies_format_names_each_policy(capsys):
    assert main(['permissions', folder('recover'), '--format', 'policies']) == 0
    lines = dict(ln.split(': ', 1) for ln in capsys.readouterr().out.splitlines())
    assert 'ec2:CreateVolume' in lines['x8-ebs-restore-from-snapshot'].split()


def test_settings_change_what_a_policy_needs(tmp_path, capsys):
    from custodian_ext import settings
    from tests.support import write_vars
    values = settings.load(os.path.join(POLICIES, 'vars.yml'))
    values['evidence_bucket'] = 'evidence-bucket'
    vars_file = write_vars(tmp_path / 'vars.yml', values)
    without, _ = permissions.required([folder('respond')])
    assert main(['permissions', folder('respond'), '--vars-file', vars_file,
                 '--format', 'md']) == 0
    assert 's3:PutObject' not in without and '`s3:PutObject`' in capsys.readouterr().out


def test_a_bad_policy_file_is_one_line(tmp_path, capsys):
    path = policy_file(tmp_path, {'name': 'x', 'resource': 'aws.ec2',
                                  'filters': [{'type': 'no-such-filter'}]})
    assert main(['permissions', path]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'no-such-filter' in err[0], err
    with pytest.raises(PackError):
        permissions.required([str(tmp_path / 'missing.yml')])


def test_readme_lists_are_the_commands_output():
    """README.md's permission lists are generated:
    python -m custodian_ext_dev.readme_permissions."""
    from custodian_ext_dev import readme_permissions
    with open(os.path.join(REPO, 'README.md')) as fh:
        text = fh.read()
    found = readme_permissions.blocks(text)
    assert set(found) == {f'policies/{n}' for n in FOLDERS}
    for name, body in found.items():
        assert body == readme_permissions.expected(name), (
            f"README.md's {name} list is stale: run python -m "
            f"custodian_ext_dev.readme_permissions")
