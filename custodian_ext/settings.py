"""The pack's settings: the keys of ``policies/vars.yml``, their types and defaults.

Policies read settings through Custodian's ``{name}`` variable substitution
(``custodian run --vars-file`` and c7n-org's ``vars``). Custodian itself does
not check them: a region list written as a string silently turns ``not-in``
into a substring test, and a missing key leaves the literal ``{incident_start}``
in the policy. So every value is checked here, before any API call, and a bad
one stops the run with a single line that names the key and says what to write.

``SETTINGS`` is a table: each row declares its value's ``Rule`` (kind, limits, the one
line said when the value is wrong, an example), and ``check_value`` is the one checker.
``is_placeholder`` is the one definition of "still an unsubstituted ``{setting}``".

Every setting is documented in the README; ``tests/inprocess/test_settings.py``
keeps the README, ``policies/vars.yml`` and this table in step.
"""
import datetime
import difflib
import re
from dataclasses import dataclass
from typing import Any, Callable

import yaml


class SettingsError(ValueError):
    """A settings value is missing or malformed. The message is one line."""


REQUIRED = object()

TIMESTAMP_EXAMPLE = '2026-11-28T09:30:00Z'
TRANSPORT_EXAMPLE = ("{type: sns, topic: 'arn:aws:sns:us-east-1:123456789012:security-alerts'} "
                     "or {type: sqs, queue: 'https://sqs.us-east-1.amazonaws.com/123456789012/"
                     "custodian-mailer'}")

# -- "still an unsubstituted {setting}" ---------------------------------------

#: ``{name}`` anywhere in a string
PLACEHOLDER_RE = re.compile(r'\{(\w+)\}')
#: the JSON-schema form of a whole-string placeholder, for options whose schema wants another
#: type (a number, a list): ``custodian run`` checks the schema before it substitutes
PLACEHOLDER_SCHEMA = {'type': 'string', 'pattern': r'^\{\w+\}$'}


def is_placeholder(value):
    """True while ``value`` is still an unsubstituted setting: a string that is exactly
    ``{name}`` (any name: c7n substitutes its own too), or that contains ``{name}`` for one
    of the pack's settings (``'prefix-{incident_id}'``).

    ``custodian validate`` has no --vars-file and c7n checks a policy's schema before it
    substitutes, so filters and actions accept such a value in ``validate()`` and check the
    real one when the policy runs.
    """
    if not isinstance(value, str) or '{' not in value:
        return False
    if PLACEHOLDER_RE.fullmatch(value):
        return True
    return any(name in SETTINGS for name in PLACEHOLDER_RE.findall(value))


def or_placeholder(schema):
    """A JSON schema that also accepts a whole ``'{setting}'`` string."""
    return {'anyOf': [schema, PLACEHOLDER_SCHEMA]}


# -- what a setting's value may be --------------------------------------------

@dataclass(frozen=True)
class Rule:
    """What a value may be, declared; ``check_value`` is the one checker.

    ``kind``: ``string`` (``pattern``: a regular expression searched in it),
    ``timestamp`` (ISO-8601 UTC with a time of day), ``account-id`` (12 digits; YAML's
    unquoted int is padded back), ``number`` or ``int`` (``minimum``, ``exclusive``),
    ``bool``, ``list`` (of ``items``; ``nonempty``), ``mapping`` (``fields``: name -> Rule
    for known keys, ``required`` among them; or any key checked by ``keys`` with its value
    checked by ``values``), ``variants`` (a mapping whose ``tag`` key picks the mapping
    rule in ``variants``).

    ``error`` is the one line said when the value is not what the rule wants, formatted
    with ``key``, ``value``, ``type`` (the value's type name) and ``example``; a part
    without its own ``error`` (a list item, a mapping value) reports its parent's.
    ``blank``: ``None``, ``''`` and ``{}`` stand for "none" and are returned as this value.
    ``unknown_error``: said for a key a mapping does not know, formatted with ``name``
    (the first such key), ``names`` (all of them) and ``tag`` (the variant).
    """
    kind: str
    error: str = None
    example: str = ''
    pattern: str = None
    minimum: float = None
    exclusive: bool = False
    items: 'Rule' = None
    nonempty: bool = False
    empty_error: str = None
    fields: dict = None
    required: tuple = ()
    keys: 'Rule' = None
    values: 'Rule' = None
    unknown_error: str = None
    tag: str = None
    variants: dict = None
    blank: Any = REQUIRED
    normalize: Callable[[Any], Any] = None


class _Invalid(Exception):
    """A part without its own error message: its parent reports."""


def _fail(rule, key, value, template=None, **extra):
    template = template or rule.error
    if template is None:
        raise _Invalid()
    raise SettingsError(template.format(key=key, value=value, type=type(value).__name__,
                                        example=rule.example, **extra))


def check_value(rule, key, value):
    """``value`` checked against ``rule`` and normalized; SettingsError (one line) if not."""
    try:
        return _check(rule, key, value)
    except _Invalid:
        return _fail(rule, key, value)


def _check(rule, key, value):
    if rule.blank is not REQUIRED and value in (None, '', {}):
        return rule.blank
    kind = rule.kind
    if kind == 'string':
        if not isinstance(value, str) or (rule.pattern and not re.search(rule.pattern, value)):
            _fail(rule, key, value)
    elif kind == 'account-id':
        # An unquoted id is read by YAML as an int and loses its leading zeros.
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10 ** 12:
            value = '%012d' % value
        if not isinstance(value, str) or not re.fullmatch(r'\d{12}', value):
            _fail(rule, key, value)
    elif kind == 'timestamp':
        value = _timestamp_value(rule, key, value)
    elif kind in ('number', 'int'):
        types = int if kind == 'int' else (int, float)
        low = rule.minimum
        if (isinstance(value, bool) or not isinstance(value, types) or low is not None and (
                value <= low if rule.exclusive else value < low)):
            _fail(rule, key, value)
    elif kind == 'bool':
        if not isinstance(value, bool):
            _fail(rule, key, value)
    elif kind == 'list':
        if not isinstance(value, list):
            _fail(rule, key, value)
        if rule.nonempty and not value:
            _fail(rule, key, value, rule.empty_error)
        value = [_part(rule, key, value, rule.items, f'{key}[{i}]', v)
                 for i, v in enumerate(value)]
    elif kind == 'mapping':
        value = _mapping(rule, key, value)
    elif kind == 'variants':
        if not isinstance(value, dict) or value.get(rule.tag) not in rule.variants:
            _fail(rule, key, value)
        variant = rule.variants[value[rule.tag]]
        value = _mapping(variant, key, value, parent=rule, tag=value[rule.tag])
    else:  # pragma: no cover - a mistake in the table, caught by the tests
        raise ValueError(f'{key}: unknown rule kind {kind!r}')
    return rule.normalize(value) if rule.normalize else value


def _part(rule, key, value, part, part_key, part_value):
    """Check a list item or mapping entry; a part without its own error reports the whole."""
    try:
        return _check(part, part_key, part_value)
    except _Invalid:
        if part.error:
            _fail(part, part_key, part_value)
        return _fail(rule, key, value)


def _mapping(rule, key, value, parent=None, tag=None):
    """A mapping: known ``fields`` (a variant may also carry its ``tag``), or any keys."""
    parent = parent or rule
    if not isinstance(value, dict):
        _fail(parent, key, value)
    if rule.fields is not None:
        known = set(rule.fields) | ({parent.tag} if tag else set())
        unknown = [k for k in value if k not in known]
        if unknown:
            _fail(parent, key, value, parent.unknown_error or rule.unknown_error,
                  name=unknown[0], names=', '.join(sorted(map(str, unknown))), tag=tag)
        out = dict(value)
        for name, part in rule.fields.items():
            if name in value or name in rule.required:
                out[name] = _part(parent, key, value, part, f'{key}.{name}', value.get(name))
        return out
    out = {}
    for k, v in value.items():
        if rule.keys:
            _part(parent, key, value, rule.keys, f'{key}.{k}', k)
        out[k] = _part(parent, key, value, rule.values, f'{key}.{k}', v) if rule.values else v
    return out


def _timestamp_value(rule, key, value):
    if isinstance(value, datetime.datetime):
        # YAML turns an unquoted timestamp into a datetime; keep the UTC rule.
        if value.tzinfo is None or value.utcoffset() != datetime.timedelta(0):
            _fail(rule, key, value, '{key}: {value} has no UTC offset; write it like {example}')
        return value.strftime('%Y-%m-%dT%H:%M:%SZ')
    if not isinstance(value, str) or not re.search(
            r'^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]00:?00)$', value):
        _fail(rule, key, value)
    try:
        datetime.datetime.fromisoformat(value.replace('Z', '+00:00'))
    except ValueError:
        _fail(rule, key, value,
              '{key}: {value!r} is not a valid date and time; write it like {example}')
    return value


# The rules the settings share.
REGION = Rule('string', pattern=r'^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d{1,2}$',
              error='{key}: {value!r} is not an AWS region name; write it like {example}',
              example='us-east-1')
REGIONS = Rule('list', items=REGION, nonempty=True,
               error='{key}: expected a list of region names such as {example}, '
                     'got {type} {value!r}',
               empty_error='{key}: the list is empty; name at least one region',
               example='[us-east-1, eu-west-1]')
TIMESTAMP = Rule('timestamp',
                 error='{key}: {value!r} is not an ISO-8601 UTC timestamp with a time of day; '
                       'write it like {example}',
                 example=TIMESTAMP_EXAMPLE)
ACCOUNT_IDS = Rule('list', items=Rule(
    'account-id', error="{key}: {value!r} is not a 12-digit AWS account id; quote it, "
                        "like {example}", example="'123456789012'"),
    error='{key}: expected a list of 12-digit account ids in quotes, got {value!r}')
POSITIVE_NUMBER = Rule('number', minimum=0, exclusive=True,
                       error='{key}: expected a number greater than 0, got {value!r}')
BUCKET = Rule('string', pattern=r'^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$', blank='',
              error="{key}: {value!r} is not an S3 bucket name; give the bare name, "
                    "or '' for none")
ROLE_NAME = Rule('string', pattern=r'^(?!arn:)(/[\w+=,.@-]+)*/?[\w+=,.@-]{1,64}$', blank='',
                 normalize=lambda v: v.lstrip('/'),
                 error='{key}: {value!r} is not an IAM role name; give the name (or '
                       'path/name), like {example}, not an ARN',
                 example='CustodianPackReact')
NAME = Rule('string', pattern='.')  # not empty; reports its list's error
COUNT = Rule('int', minimum=1, error='{key}: expected a whole number, 1 or more, got {value!r}')


def names(example, what='names'):
    """A list of non-empty strings, e.g. ``[alice, deploy-bot]``."""
    return Rule('list', items=NAME, example=example,
                error=f'{{key}}: expected a list of {what} such as {{example}}, got {{value!r}}')


TRANSPORT = Rule(
    'variants', tag='type', blank={}, example=TRANSPORT_EXAMPLE,
    error='{key}: expected {example}, got {value!r}',
    unknown_error='{key}: unexpected {names} for a {tag} transport; expected {example}',
    variants={
        'sns': Rule('mapping', required=('topic',), fields={
            'topic': Rule('string', pattern=r'^(arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:)?'
                                            r'[\w-]{1,256}(\.fifo)?$',
                          error='{key}: {value!r} is not an SNS topic ARN or name'),
            'attributes': Rule('mapping', blank=None,
                               keys=Rule('string', pattern=r'^(?!mtype$)'),
                               values=Rule('string'),
                               error="{key}: a mapping of name to string value, without "
                                     "'mtype' (c7n reserves it)")}),
        'sqs': Rule('mapping', required=('queue',), fields={
            'queue': Rule('string', pattern=r'^(https://[\w.-]+/\d{12}/[\w-]{1,80}(\.fifo)?|'
                                            r'(arn:aws[a-z-]*:sqs:[a-z0-9-]+:\d{12}:)?'
                                            r'[\w-]{1,80}(\.fifo)?)$',
                          error='{key}: {value!r} is not an SQS queue URL, ARN or name')}),
    })


@dataclass(frozen=True)
class Setting:
    name: str
    rule: Rule
    default: Any
    help: str
    #: a stand-in for a required setting, to validate a policy before its settings are known
    sample: Any = None

    def check(self, value, key=None):
        """``value`` checked as this setting, reported under ``key`` (an option's name)."""
        return check_value(self.rule, key or self.name, value)


SETTINGS = {s.name: s for s in (
    Setting('allowed_regions', REGIONS, REQUIRED,
            'Regions the account is meant to use. Resources anywhere else are findings (R3.3).',
            sample=['us-east-1']),
    Setting('incident_start', TIMESTAMP, REQUIRED,
            'ISO-8601 UTC timestamp, e.g. 2026-11-28T09:30:00Z. Anything created, used or '
            'changed at or after it is suspect.', sample=TIMESTAMP_EXAMPLE),
    Setting('known_users', names('[alice, deploy-bot]'), [],
            'IAM user names (or shell patterns such as svc-*) that are expected. Others are '
            'findings (R4.1).'),
    Setting('known_roles', names('[alice, deploy-bot]'), [],
            'IAM role names (or name patterns with *) that are expected. Others are findings '
            '(R4.1).'),
    Setting('known_accounts', ACCOUNT_IDS, [],
            'AWS Organizations member account ids that are expected (R4.3).'),
    Setting('trusted_accounts', ACCOUNT_IDS, [],
            'External account ids that trust policies, shares and bucket policies may name '
            '(R4.2).'),
    Setting('stale_days', POSITIVE_NUMBER, 90,
            'Credentials unused for this many days are flagged (R1.1).'),
    Setting('global_region', REGION, 'us-east-1',
            'The one region in which policies for global services (IAM, Organizations, '
            'Route 53 Domains) run, so they run once per account. Include it in every sweep.'),
    Setting('incident_id',
            Rule('string', pattern=r'^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$',
                 error="{key}: {value!r} must be 1-128 letters, digits, '.', '_', ':' or '-' "
                       "(it becomes a tag value and part of object keys)"),
            'incident',
            'Short id of this incident; respond actions tag snapshots and evidence with it.'),
    Setting('evidence_bucket', BUCKET, '',
            'S3 bucket that receives evidence (instance and user descriptions) before '
            'anything is changed. Empty: evidence goes to the policy output only.'),
    Setting('key_grace_days',
            Rule('int', minimum=0,
                 error='{key}: expected a whole number of days (0 or more), got {value!r}'),
            7,
            'Days a deactivated access key is kept before the delete policy may remove it (X1).'),
    Setting('keep_access_keys',
            Rule('list', example='[AKIAIOSFODNN7EXAMPLE]',
                 error='{key}: expected a list of access key ids such as {example}, '
                       'got {value!r}',
                 items=Rule('string', pattern=r'^[A-Z0-9]{16,128}$', example='AKIAIOSFODNN7EXAMPLE',
                            error='{key}: {value!r} is not an access key id (like {example})')),
            [],
            'Access key ids the X1 respond policies leave active and never delete: the '
            'replacement key, or an old key reactivated because an application broke.'),
    Setting('unusual_instance_types', names("['p4d.*', 'g5.*']", 'patterns'),
            ['p2.*', 'p3.*', 'p3dn.*', 'p4d.*', 'p4de.*', 'p5.*', 'p5e.*', 'p5en.*', 'p6*',
             'g3.*', 'g3s.*', 'g4dn.*', 'g4ad.*', 'g5.*', 'g5g.*', 'g6.*', 'g6e.*', 'gr6.*',
             'inf1.*', 'inf2.*', 'trn1.*', 'trn1n.*', 'trn2.*', 'dl1.*', 'dl2q.*',
             'x1.*', 'x1e.*', 'x2*', 'u-*', '*.metal', '*.24xlarge', '*.32xlarge',
             '*.48xlarge'],
            'Instance type patterns (shell-style) that mining attacks favour: GPU, '
            'accelerator and very large instances.'),
    Setting('cost_increase_ratio', POSITIVE_NUMBER, 1.5,
            'R3.1 flags a service or region whose spend this month is this many times '
            'last month\'s (pro-rated to the same number of days).'),
    Setting('cost_min_amount', POSITIVE_NUMBER, 10,
            'R3.1 ignores services and regions below this amount (USD) this month.'),
    Setting('expected_contacts',
            Rule('mapping',
                 fields={t: Rule('string', pattern='@',
                                 error='{key}: {value!r} is not an email address')
                         for t in ('security', 'billing', 'operations')},
                 error='{key}: expected a mapping of contact type (security, billing, '
                       'operations) to its expected email address, got {value!r}',
                 unknown_error='{key}.{name}: unknown contact type; use security, billing '
                               'or operations'),
            {},
            'Expected alternate contact email per type (security, billing, operations) (X9). '
            'A missing contact is always a finding; a different email is one when listed here.'),
    Setting('restore_preview', Rule('bool', error='{key}: expected true or false, got {value!r}'),
            False,
            'X8: true makes the recover actions only report what they would restore '
            '(dry-run-report); `make recover-preview` sets it.'),
    Setting('restore_max_objects', COUNT, 50000,
            'X8: the most S3 objects (keys) restore-object-versions examines in one run; '
            'the run then records a continuation token per bucket.'),
    Setting('restore_continuation',
            # bucket name -> token printed by restore-object-versions (see restore_s3)
            Rule('mapping', blank={}, keys=BUCKET,
                 values=Rule('string', pattern=r'^[A-Za-z0-9_=-]+$',
                             error='{key}: {value!r} is not a continuation token; copy it from '
                                   "restore-continuation.yml in the previous run's output"),
                 error='{key}: expected a mapping of bucket name to the continuation token a '
                       'previous run printed (or {{}}), got {value!r}'),
            {},
            'X8: bucket name -> continuation token from the previous run\'s '
            'restore-continuation.yml, to resume an S3 restore where it stopped.'),
    Setting('restore_pitr_margin_minutes',
            Rule('int', minimum=0,
                 error='{key}: expected a whole number of minutes (0 or more), got {value!r}'),
            5,
            'X8: an RDS point-in-time restore goes to incident_start minus this many minutes.'),
    Setting('object_scan_max_versions', COUNT, 100000,
            'X8: the most object versions and delete markers the S3 deletes/overwrites check '
            'reads per versioned bucket; a bucket with more is reported as cut short.'),
    Setting('react_role', ROLE_NAME, 'CustodianPackReact',
            'Real-time containment: the execution role of the policies/react functions '
            '(a name; it must exist in each account they are deployed to).'),
    Setting('react_member_role', ROLE_NAME, '',
            'Real-time containment from the management account or Health delegated '
            'administrator: the role the functions assume in the member account a notice '
            'names. Empty: act only on notices for the function\'s own account.'),
    Setting('react_output',
            Rule('string', blank='',
                 pattern=r'^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]([/?].*)?$',
                 error="{key}: {value!r}: Lambda functions write to S3; give s3://bucket/prefix, "
                       "or '' for CloudWatch Logs only"),
            '',
            'Real-time containment: s3://bucket/prefix where the functions write their '
            'output (what they did). Empty: CloudWatch Logs only.'),
    # react policies refuse to deploy without a transport: validate them with one
    Setting('notify_transport', TRANSPORT, {},
            'Where the policies/react functions send c7n notify messages: an SNS topic or '
            'an SQS queue (c7n-mailer reads either). Required to deploy them.',
            sample={'type': 'sns', 'topic': 'arn:aws:sns:us-east-1:123456789012:sample'}),
    Setting('notify_to', names('[security@example.com]', 'recipients for c7n-mailer'), [],
            'Recipients c7n-mailer delivers the react notices to (emails, Slack webhooks, ...).',
            sample=['security@example.com']),
)}


def check(name, value, key=None):
    """``value`` checked as setting ``name`` (reported as ``key``, an option's name)."""
    return SETTINGS[name].check(value, key)


# Stand-ins for required settings, used only to validate a policy before its
# variables are known (``custodian validate`` has no --vars-file).
SAMPLES = {s.name: s.sample for s in SETTINGS.values() if s.sample is not None}


def samples():
    """A complete, valid set of settings: defaults plus stand-ins for required ones."""
    return {name: SAMPLES.get(name, s.default) for name, s in SETTINGS.items()}


def referenced(policy_data):
    """Names of pack settings that a policy refers to as ``{name}``."""
    found = set()
    stack = [policy_data]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            if '{' in v:
                found.update(m for m in PLACEHOLDER_RE.findall(v) if m in SETTINGS)
        elif isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, (list, tuple)):
            stack.extend(v)
    return found


def substitute(obj, values):
    """A copy of ``obj`` with the pack settings in ``values`` put in for ``{name}``.

    As c7n's own substitution does, a string that is only ``'{name}'`` takes
    the setting's value and type; other placeholders (``{account_id}``) are
    left for c7n.
    """
    if isinstance(obj, dict):
        return {k: substitute(v, values) for k, v in obj.items()}
    if isinstance(obj, list):
        return [substitute(v, values) for v in obj]
    if not isinstance(obj, str) or '{' not in obj:
        return obj
    known = {k: v for k, v in values.items() if k in SETTINGS}
    whole = PLACEHOLDER_RE.fullmatch(obj)
    if whole and whole.group(1) in known:
        import copy
        return copy.deepcopy(known[whole.group(1)])
    return PLACEHOLDER_RE.sub(
        lambda m: str(known[m.group(1)]) if m.group(1) in known else m.group(0), obj)


def _unknown_key_error(key, source):
    close = difflib.get_close_matches(key, list(SETTINGS), n=1, cutoff=0.75)
    hint = f"; did you mean '{close[0]}'?" if close else (
        '; known settings: ' + ', '.join(sorted(SETTINGS)))
    return SettingsError(f"{source}: unknown setting '{key}'{hint}")


def validate(values, source='vars', names=None, strict=False, unknown=True):
    """Check settings and return a new dict with defaults filled in.

    ``names`` limits the check to those settings (the ones a policy uses);
    ``strict`` rejects every key that is not a pack setting. Otherwise only a
    key that looks like a misspelt setting is rejected, since a vars file may
    also carry values for the user's own policies. ``unknown=False`` skips
    the key check (per policy, where c7n has already added its own variables).
    """
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise SettingsError(
            f"{source}: expected a mapping of setting: value, got {type(values).__name__}")
    out = dict(values)
    for key in (values if unknown else ()):
        if key in SETTINGS or not isinstance(key, str):
            continue
        if strict or difflib.get_close_matches(key, list(SETTINGS), n=1, cutoff=0.75):
            raise _unknown_key_error(key, source)
    # In declaration order, so that the first problem reported does not depend on set order.
    for name in (SETTINGS if names is None else [n for n in SETTINGS if n in names]):
        spec = SETTINGS[name]
        if name not in values or values[name] is None:
            if spec.default is REQUIRED:
                raise SettingsError(
                    f"{source}: required setting '{name}' is missing; add it to "
                    f"policies/vars.yml ({spec.help.split('.')[0].lower()})")
            out[name] = spec.default
            continue
        try:
            out[name] = spec.check(values[name])
        except SettingsError as e:
            raise SettingsError(f"{source}: {e}") from None
    return out


def load(path, strict=True):
    """Read and check a vars file; raise SettingsError with one line on any problem."""
    try:
        with open(path) as fh:
            data = yaml.safe_load(fh)
    except FileNotFoundError:
        raise SettingsError(f"{path}: vars file not found") from None
    except yaml.YAMLError as e:
        raise SettingsError(yaml_error(path, e)) from None
    return validate(data, source=path, strict=strict)


def yaml_error(path, error):
    """One line for a YAML parse error in a vars, policy or accounts file: where, and what."""
    mark = getattr(error, 'problem_mark', None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ''
    problem = getattr(error, 'problem', None) or str(error).splitlines()[0]
    return f"{path}: not valid YAML{where}: {problem}"


def incident_start(values):
    """``incident_start`` as an aware datetime."""
    return parse_timestamp(values['incident_start'])


def parse_timestamp(value):
    if isinstance(value, datetime.datetime):
        return value if value.tzinfo else value.replace(tzinfo=datetime.timezone.utc)
    return datetime.datetime.fromisoformat(str(value).replace('Z', '+00:00'))
