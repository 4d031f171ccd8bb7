"""Every filter, action, resource type and mode the pack registers, checked the way Cloud
Custodian checks its own: the IAM actions they declare exist, and their docstring example
policies validate.

The elements are found in c7n's registries after ``import custodian_ext`` (every AWS
resource type loaded), keeping the classes whose module is the pack's.

IAM actions are checked against botocore's service models, the same data the AWS SDKs
are built from: an IAM prefix is the ``signingName`` or ``endpointPrefix`` of a model's
metadata, and an IAM action is named after the API operation it authorizes. The few
actions that are not (``IAM_ONLY``) are listed with the operation they authorize and
AWS's documentation that says so.
"""
import fnmatch
import functools
import glob
import os
import re
import textwrap

import botocore.session
import yaml

from custodian_ext import settings
from custodian_ext_dev.runbook_map import action_types, filter_types
from tests.support import POLICIES

#: IAM actions that are not the name of an API operation: action -> (the operation it
#: authorizes, or None, and where AWS documents it). Keep it to what the pack declares.
IAM_ONLY = {
    's3:ListBucketVersions': (
        's3:ListObjectVersions', 'Amazon S3 API Reference, ListObjectVersions: '
                                 '"you must have the s3:ListBucketVersions permission"'),
    's3:GetObjectVersion': (
        's3:GetObject', 'Amazon S3 API Reference, GetObject: a request with versionId '
                        'needs s3:GetObjectVersion'),
    's3:GetObjectVersionTagging': (
        's3:GetObjectTagging', 'Amazon S3 API Reference, GetObjectTagging: for a version, '
                               'the s3:GetObjectVersionTagging permission'),
    's3:DeleteObjectVersion': (
        's3:DeleteObject', 'Amazon S3 API Reference, DeleteObject: deleting a version '
                           'needs s3:DeleteObjectVersion'),
    's3:GetLifecycleConfiguration': (
        's3:GetBucketLifecycleConfiguration',
        'Amazon S3 API Reference, GetBucketLifecycleConfiguration: "you must have '
        'permission to perform the s3:GetLifecycleConfiguration action"'),
    's3:GetEncryptionConfiguration': (
        's3:GetBucketEncryption', 'Amazon S3 API Reference, GetBucketEncryption: "you must '
                                  'have the s3:GetEncryptionConfiguration permission"'),
}


def is_pack(klass):
    module = klass.__module__
    return module == 'custodian_ext' or module.startswith('custodian_ext.')


@functools.lru_cache(maxsize=1)
def pack_elements():
    """{class: (kind, name, sorted resource types)} for everything the pack registers."""
    import custodian_ext  # noqa: F401
    from c7n.policy import execution
    from c7n.resources import load_resources
    from c7n.resources.aws import AWS
    load_resources(('aws.*',))
    found = {}
    for rtype, rclass in sorted(AWS.resources.items()):
        if is_pack(rclass):
            found[rclass] = ('resource', f'aws.{rtype}', [f'aws.{rtype}'])
        for kind, registry in (('filter', rclass.filter_registry),
                               ('action', rclass.action_registry)):
            for name, klass in registry.items():
                if is_pack(klass):
                    found.setdefault(klass, (kind, name, []))[2].append(f'aws.{rtype}')
    for name, klass in execution.items():
        if is_pack(klass):
            found[klass] = ('mode', name, [])
    return found


# -- docstring examples -----------------------------------------------------------------

def examples(klass):
    """The YAML of each ``:example:`` code block in the class's own docstring."""
    doc = klass.__dict__.get('__doc__') or ''
    out = []
    for m in re.finditer(r':example:\s*\n\s*\.\. code-block:: *yaml\s*\n', doc):
        lines = []
        for line in doc[m.end():].splitlines():
            if line.strip() and not line.startswith((' ' * 8, '\t')):
                break
            lines.append(line)
        out.append(textwrap.dedent('\n'.join(lines)).strip() + '\n')
    return out


@functools.lru_cache(maxsize=1)
def all_examples():
    """[(element label, example policy data)] for every example of every pack element."""
    out = []
    for klass, (kind, name, _) in pack_elements().items():
        for text in examples(klass):
            out.append((f'{kind} {name} ({klass.__module__}.{klass.__name__})',
                        yaml.safe_load(text)))
    return out


def validate(data):
    """What ``custodian validate`` does with a file, in-process, with the pack's sample
    settings substituted: the structure, the JSON schema, then each policy's validate().
    Returns the errors."""
    from c7n import schema
    from c7n.config import Bag, Config
    from c7n.policy import Policy
    from c7n.resources import load_resources
    data = settings.substitute(data, settings.samples())
    structure = schema.StructureParser()
    structure.validate(data)
    types = structure.get_resource_types(data)
    load_resources(types)
    errors = [str(e) for e in schema.validate(data, generated_schema(tuple(sorted(types))))]
    if errors:
        return errors
    for p in data['policies']:
        try:
            Policy(p, Config.empty(dryrun=True, account_id='na', region='na'), Bag()).validate()
        except Exception as e:
            errors.append(f"policy {p.get('name')}: {type(e).__name__}: {e}")
    return errors


@functools.lru_cache(maxsize=None)
def generated_schema(resource_types):
    """c7n's schema for these resource types (``custodian validate`` loads only the types
    a file names, so its schema holds only those)."""
    from c7n import schema
    return schema.generate(resource_types)


def test_every_docstring_example_validates():
    failures = [f'{where}: {e}' for where, data in all_examples() for e in validate(data)]
    assert not failures, '\n'.join(failures)


def test_example_policy_names_are_unique_across_the_pack():
    seen = {}
    dupes = []
    for where, data in all_examples():
        for p in data['policies']:
            if p['name'] in seen:
                dupes.append(f"{p['name']}: {seen[p['name']]} and {where}")
            seen.setdefault(p['name'], where)
    assert not dupes, '\n'.join(dupes)


def test_every_filter_and_action_shows_itself_in_an_example():
    missing = []
    for klass, (kind, name, _) in pack_elements().items():
        if kind not in ('filter', 'action'):
            continue
        used = set()
        for text in examples(klass):
            for p in yaml.safe_load(text)['policies']:
                used |= set(filter_types(p.get('filters'))) | set(action_types(p.get('actions')))
        if name not in used:
            missing.append(f'{kind} {name} ({klass.__module__}.{klass.__name__})')
    assert not missing, 'no :example: policy uses:\n' + '\n'.join(missing)


def test_no_example_hides_outside_a_registered_element():
    """Every ``:example:`` in the package's source is one this file checks."""
    root = os.path.dirname(settings.__file__)
    in_source = 0
    for path in glob.glob(os.path.join(root, '**', '*.py'), recursive=True):
        with open(path) as fh:
            in_source += fh.read().count(':example:')
    assert in_source == len(all_examples())


# -- permissions ------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def operations(prefix):
    """The API operations of the botocore service(s) whose signingName or endpointPrefix is
    the IAM prefix ``prefix``; the model named like the prefix first, all models if none."""
    session = botocore.session.get_session()
    loader = session.get_component('data_loader')
    names = loader.list_available_services('service-2')
    found = set()
    for candidates in ([prefix] if prefix in names else [], names):
        for name in candidates:
            model = loader.load_service_model(name, 'service-2')
            meta = model['metadata']
            if prefix in (meta.get('signingName'), meta.get('endpointPrefix')):
                found |= set(model['operations'])
        if found:
            return frozenset(found)
    return frozenset()


def unknown(permission):
    """Why ``permission`` is not an IAM action, or None when it is one."""
    if permission in IAM_ONLY:
        return None
    prefix, _, action = permission.partition(':')
    if not action or not re.fullmatch(r'[a-z0-9-]+', prefix):
        return 'not of the form service:Action'
    ops = operations(prefix)
    if not ops:
        return f'no botocore service has signing name or endpoint prefix {prefix!r}'
    if not any(fnmatch.fnmatchcase(op, action) for op in ops):
        close = sorted(op for op in ops if op.lower() == action.lower())
        return f'{prefix} has no operation {action}' + (f' (did you mean {close[0]}?)'
                                                          if close else '')
    return None


def instances(policy_data):
    """The pack's filters, actions and mode in a compiled policy."""
    from c7n.config import Config
    from c7n.policy import Policy
    p = Policy(settings.substitute(policy_data, settings.samples()),
               Config.empty(region='us-east-1', account_id='123456789012'))
    manager = p.resource_manager
    found = [f for f in manager.iter_filters() if is_pack(type(f))]
    found += [a for a in manager.actions if is_pack(type(a))]
    if is_pack(type(p.execution_mode)):
        found.append(p.execution_mode)
    if is_pack(type(manager)):
        found.append(manager)
    return found


def shipped_policies():
    out = []
    for path in sorted(glob.glob(os.path.join(POLICIES, '*', '*.yml'))):
        with open(path) as fh:
            data = yaml.safe_load(fh) or {}
        out.extend((os.path.relpath(path, POLICIES), p) for p in data.get('policies') or ())
    return out


def test_every_declared_permission_is_an_iam_action():
    """Each element as the shipped policies and the examples configure it, and alone on
    every resource type it is registered on (where its options allow)."""
    from c7n.config import Config
    from c7n.exceptions import PolicyValidationError
    from c7n.policy import Policy
    checked = {}  # (class, resource type) -> set of permissions
    uses = [(f'policies/{path}', p) for path, p in shipped_policies()]
    uses += [(where, p) for where, data in all_examples() for p in data['policies']]
    for where, data in uses:
        for element in instances(data):
            rtype = data['resource'] if '.' in data['resource'] else f"aws.{data['resource']}"
            checked.setdefault((type(element), rtype), set()).update(
                (p, where) for p in element.get_permissions())
    bare_errors = []
    for klass, (kind, name, rtypes) in pack_elements().items():
        if kind not in ('filter', 'action'):
            continue
        for rtype in rtypes:
            manager = Policy({'name': 'z9-registry', 'resource': rtype}, Config.empty(
                region='us-east-1', account_id='123456789012')).resource_manager
            try:
                element = klass({'type': name}, manager)
                perms = element.get_permissions()
            except (KeyError, TypeError, PolicyValidationError) as e:
                if (klass, rtype) not in checked:
                    bare_errors.append(f'{kind} {name} on {rtype}: no policy or example uses '
                                       f'it there, and alone it fails ({e!r})')
                continue
            checked.setdefault((klass, rtype), set()).update(
                (p, f'{kind} {name} alone') for p in perms)
    failures = sorted({f'{p} ({where}, {klass.__module__}.{klass.__name__}): {why}'
                       for (klass, _), perms in checked.items() for p, where in perms
                       for why in [unknown(p)] if why})
    assert not (failures or bare_errors), '\n'.join(failures + bare_errors)
    declared = {p for perms in checked.values() for p, _ in perms}
    assert set(IAM_ONLY) <= declared, (
        f'IAM_ONLY lists actions no element declares: {sorted(set(IAM_ONLY) - declared)}')


def test_iam_only_actions_name_operations_that_exist():
    for action, (operation, source) in IAM_ONLY.items():
        assert source
        if operation:
            prefix, _, name = operation.partition(':')
            assert name in operations(prefix), f'{action}: {operation} is not an operation'
            assert action.split(':')[1] not in operations(prefix)  # else it needs no entry


def test_the_check_knows_a_misspelt_action():
    assert unknown('ec2:DescribeInstances') is None
    assert unknown('ce:GetCostAndUsage') is None  # the model is named after its prefix
    assert unknown('ec2:Describe*') is None
    assert unknown('ec2:DescribeInstance') == 'ec2 has no operation DescribeInstance'
    assert unknown('iam:Getuser') == 'iam has no operation Getuser (did you mean GetUser?)'
    assert 'no botocore service' in unknown('ec3:DescribeInstances')
    assert unknown('DescribeInstances') == 'not of the form service:Action'
