"""``custodian-ext permissions``: the IAM policy a set of policies needs, checked against botocore.

For each policy: its resource manager's permissions (for ``aws.s3``, only the
bucket details c7n reads for the policy), every filter's and action's
``get_permissions()`` (filters inside ``or``/``and``/``not`` too,
which c7n's ``Policy.get_permissions`` leaves out), its mode's permissions and
a Lambda function's logs for Lambda modes, what every run calls
(``sts:GetCallerIdentity``), and the corrections in
``custodian_ext/data/permissions.yml`` for calls c7n makes without declaring
them (``lambda:ListLayerVersions`` for ``aws.lambda-layer``, ...), less those
it declares but provably does not call given an element's options (the data
file's ``unused``).

Every action is checked against botocore's service models: the IAM prefix
names the service (the model whose name, ``signingName`` or
``endpointPrefix`` is the prefix, or the data file's ``prefixes``), and the
action must be one of its operations (not one whose permission IAM names
otherwise: ``s3:GetBucketReplication`` is ``s3:GetReplicationConfiguration``),
or one of the data file's IAM-only actions (``iam:PassRole``,
``s3:ListBucket`` ...), with the exact case. A
wildcard (``kms:ReEncrypt*``) must match at least one. Anything else is a
``PackError`` naming the action and the policy.

The document groups the actions by service, one statement each
(``Resource: '*'``), sorted; a Lambda policy writing to ``s3://`` adds
``s3:PutObject`` on that prefix. IAM counts a policy's characters without
white space: a managed policy holds at most 6,144, a role's inline policies
10,240 together. A document over 6,144 is refused with a message, unless
``split`` is asked for: then the statements are spread over as few documents
as fit (a role takes up to 10 managed policies by default, 20 at most).
"""
import difflib
import functools
import json
import os
import re

import yaml

from custodian_ext.errors import PackError

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'data', 'permissions.yml')
MANAGED_POLICY_LIMIT = 6144   # characters, white space not counted (IAM quotas)
ACTION = re.compile(r'^([a-z0-9-]+):([A-Za-z0-9*?]+)$')


@functools.lru_cache(maxsize=1)
def data():
    with open(DATA) as fh:
        return yaml.safe_load(fh)


# -- what the policies declare ---------------------------------------------------------------

def _walk_filters(filters):
    for f in filters or ():
        yield f
        yield from _walk_filters(getattr(f, 'filters', None))


def _type(element):
    d = getattr(element, 'data', None)
    if isinstance(d, dict) and d.get('type'):
        return d['type']
    return getattr(element, 'type', None) or type(element).__name__


def _is_lambda(policy):
    from c7n.policy import ServerlessExecutionMode
    return isinstance(policy.get_execution_mode(), ServerlessExecutionMode)


def _corrections(policy):
    resource = policy.resource_type
    filters = {_type(f) for f in _walk_filters(policy.resource_manager.filters)}
    actions = {_type(a) for a in policy.resource_manager.actions}
    mode = (policy.data.get('mode') or {}).get('type', 'pull')
    out = set()
    for entry in data().get('corrections') or ():
        if 'resource' in entry and entry['resource'] != resource:
            continue
        if 'filter' in entry and entry['filter'] not in filters:
            continue
        if 'action' in entry and entry['action'] not in actions:
            continue
        if 'mode' in entry and entry['mode'] != mode:
            continue
        out |= set(entry['add'])
    return out


_ABSENT = object()


def _unused(kind, element):
    """Permissions ``element`` declares but does not call with its options (data file)."""
    options = getattr(element, 'data', None)
    options = options if isinstance(options, dict) else {}
    out = set()
    for entry in data().get('unused') or ():
        if entry.get(kind) != _type(element):
            continue
        if all(('absent' if options.get(k, _ABSENT) is _ABSENT else options[k]) in values
               for k, values in (entry.get('when') or {}).items()):
            out |= set(entry['remove'])
    return out


def _element_permissions(kind, element):
    return set(element.get_permissions()) - _unused(kind, element)


def _resource_permissions(policy):
    manager = policy.resource_manager
    perms = set(manager.get_permissions())
    for entry in data().get('unused') or ():
        if entry.get('resource') == policy.resource_type and not entry.get('when'):
            perms -= set(entry['remove'])
    if policy.resource_type == 'aws.s3':
        # c7n declares every bucket detail it can read; it reads only these.
        from c7n.resources.s3 import S3_AUGMENT_TABLE, BucketAssembly
        fields = set(BucketAssembly(manager).detect_augment_fields()) | {'Location', 'Tags'}
        perms -= {row[4] for row in S3_AUGMENT_TABLE if row[1] not in fields}
    return perms


def policy_permissions(policy):
    """The IAM actions one loaded c7n ``Policy`` needs."""
    perms = _resource_permissions(policy)
    for f in _walk_filters(policy.resource_manager.filters):
        perms |= _element_permissions('filter', f)
    for a in policy.resource_manager.actions:
        perms |= _element_permissions('action', a)
    perms |= set(policy.get_execution_mode().get_permissions())
    if _is_lambda(policy):
        perms |= set(data().get('lambda-runtime') or ())
    perms |= set(data().get('run') or ())
    perms |= _corrections(policy)
    return perms


def _output_prefix(policy_data):
    output = ((policy_data.get('mode') or {}).get('execution-options') or {}).get('output_dir')
    if isinstance(output, str) and output.startswith('s3://'):
        path = output[5:].split('?', 1)[0].rstrip('/')
        return 'arn:aws:s3:::' + re.sub(r'\{[^}]+\}', '*', path) + '/*'
    return None


def load(paths, values=None):
    """[(source file, policy data with settings substituted, c7n Policy)] under ``paths``.

    ``values``: the settings to substitute (default: the defaults plus
    ``settings.SAMPLES``, as ``custodian validate`` does).
    """
    from c7n.config import Config
    from c7n.exceptions import PolicyValidationError
    from c7n.policy import Policy
    from c7n.resources import load_resources

    import custodian_ext  # noqa: F401  the pack's filters and actions must be registered
    from custodian_ext import settings
    from custodian_ext.bundle import collect

    values = settings.samples() if values is None else values
    found = collect(paths)
    load_resources(tuple({p.get('resource', '') for _, p in found}))
    out = []
    for path, raw in found:
        data_ = settings.substitute(raw, values) if settings.referenced(raw) else raw
        try:
            policy = Policy(dict(data_), Config.empty(region='us-east-1',
                                                      account_id='123456789012'))
            policy.validate()
        except (PolicyValidationError, ValueError, KeyError) as e:
            raise PackError(f"{path}: policy {raw['name']}: {e}") from None
        out.append((path, data_, policy))
    return out


# -- checking against botocore --------------------------------------------------------------------

@functools.cache
def _session():
    import botocore.session
    return botocore.session.get_session()


@functools.cache
def _metadata(service):
    loader = _session().get_component('data_loader')
    model = loader.load_service_model(service, 'service-2')
    return model['metadata'], tuple(model['operations'])


def services_for(prefix):
    """The botocore services whose operations an IAM prefix names."""
    available = set(_session().get_available_services())
    candidates = list((data().get('prefixes') or {}).get(prefix) or ())
    if not candidates and prefix in available:
        candidates = [prefix]
    out = []
    for service in candidates:
        if service not in available:
            continue
        meta, _ = _metadata(service)
        if prefix in (service, meta.get('signingName'), meta.get('endpointPrefix')) or \
                service in (data().get('prefixes') or {}).get(prefix, ()):
            out.append(service)
    return out


@functools.cache
def valid_actions(prefix):
    """Every action name botocore (and the IAM-only list) knows for ``prefix``."""
    names = set((data().get('iam-only') or {}).get(prefix) or ())
    for service in services_for(prefix):
        names |= set(_metadata(service)[1])
    return frozenset(names)


def check_action(action):
    """None if ``action`` is a real IAM action, else why not (one line)."""
    m = ACTION.match(action)
    if not m:
        return f"'{action}' is not an IAM action (service:Action)"
    prefix, name = m.groups()
    known = valid_actions(prefix)
    if not known:
        return f"'{action}': no botocore service model for the IAM prefix '{prefix}'"
    if '*' in name or '?' in name:
        pattern = re.compile('^' + re.escape(name).replace(r'\*', '.*').replace(r'\?', '.') + '$')
        if any(pattern.match(k) for k in known):
            return None
        return f"'{action}' matches no action of {prefix}"
    renamed = (data().get('renamed') or {}).get(prefix, {}).get(name)
    if renamed and renamed != name and name not in (data().get('iam-only') or {}).get(prefix, ()):
        names_ = renamed if isinstance(renamed, list) else [renamed]
        return (f"'{action}' is the API operation; IAM names its permission "
                + ' and '.join(f'{prefix}:{n}' for n in names_))
    if name in known:
        return None
    close = difflib.get_close_matches(name, sorted(known), n=1)
    if not close:
        close = [k for k in known if k.lower() == name.lower()]
    hint = f"; did you mean {prefix}:{close[0]}?" if close else ''
    return f"'{action}' is not an action of {prefix} in botocore's service model{hint}"


# -- the document ---------------------------------------------------------------------------------

def required(paths, values=None):
    """({action: [policy names]}, {output resource ARN}) for the policies under ``paths``.

    Raises PackError (one line) on an action botocore does not know.
    """
    needed, outputs = {}, set()
    for path, data_, policy in load(paths, values):
        for action in policy_permissions(policy):
            needed.setdefault(action, []).append(data_['name'])
        prefix = _output_prefix(data_)
        if prefix and _is_lambda(policy):
            outputs.add(prefix)
    for action in sorted(needed):
        problem = check_action(action)
        if problem:
            raise PackError(f"{problem} (declared for policy {needed[action][0]})")
    return needed, outputs


def _sid(prefix):
    return ''.join(p.capitalize() for p in re.split(r'[^A-Za-z0-9]+', prefix))


def statements(actions, outputs=()):
    by_service = {}
    for a in sorted(actions):
        by_service.setdefault(a.split(':', 1)[0], []).append(a)
    out = [{'Sid': _sid(prefix), 'Effect': 'Allow', 'Action': acts, 'Resource': '*'}
           for prefix, acts in sorted(by_service.items())]
    if outputs:
        out.append({'Sid': 'PackOutput', 'Effect': 'Allow', 'Action': ['s3:PutObject'],
                    'Resource': sorted(outputs)})
    return out


def size(doc):
    """Characters IAM counts (white space outside strings is not counted)."""
    return len(json.dumps(doc, separators=(',', ':')))


def document(actions, outputs=()):
    return {'Version': '2012-10-17', 'Statement': statements(actions, outputs)}


def split(doc, limit=None):
    """The statements of ``doc`` spread over as few documents as fit in ``limit``."""
    limit = limit or MANAGED_POLICY_LIMIT
    docs = []
    for st in doc['Statement']:
        parts = [st]
        if size({'Version': doc['Version'], 'Statement': [st]}) > limit:
            parts = _split_statement(st, limit)
        for part in parts:
            for d in docs:
                if size({'Version': d['Version'], 'Statement': d['Statement'] + [part]}) <= limit:
                    d['Statement'].append(part)
                    break
            else:
                docs.append({'Version': doc['Version'], 'Statement': [part]})
    return docs


def _split_statement(st, limit):
    parts, current = [], dict(st, Action=[])
    for i, action in enumerate(st['Action']):
        trial = dict(current, Action=current['Action'] + [action])
        if current['Action'] and size({'Version': '2012-10-17', 'Statement': [trial]}) > limit:
            parts.append(current)
            trial = dict(st, Action=[action])
        current = trial
    parts.append(current)
    for n, p in enumerate(parts, 1):
        p['Sid'] = f"{st['Sid']}{n}"
    return parts


def markdown(actions):
    """One line per service: the form README's permission lists take."""
    by_service = {}
    for a in sorted(actions):
        by_service.setdefault(a.split(':', 1)[0], []).append(a)
    return ''.join('- ' + ', '.join(f'`{a}`' for a in names) + '\n'
                   for _, names in sorted(by_service.items()))


def by_policy(paths, values=None):
    """{policy name: sorted actions}."""
    return {data_['name']: sorted(policy_permissions(policy))
            for _, data_, policy in load(paths, values)}
