"""The pack's settings: the keys of ``policies/vars.yml``, their types and defaults.

Policies read settings through Custodian's ``{name}`` variable substitution
(``custodian run --vars-file`` and c7n-org's ``vars``). Custodian itself does
not check them: a region list written as a string silently turns ``not-in``
into a substring test, and a missing key leaves the literal ``{incident_start}``
in the policy. So every value is checked here, before any API call, and a bad
one stops the run with a single line that names the key and says what to write.

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

    def __init__(self, message):
        # one line even when it quotes a key or value with a line break in it
        super().__init__(str(message).replace('\r', '\\r').replace('\n', '\\n'))


REQUIRED = object()

REGION_RE = re.compile(r'^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d{1,2}$')
ACCOUNT_RE = re.compile(r'^\d{12}$')
TIMESTAMP_RE = re.compile(
    r'^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]00:?00)$')
TIMESTAMP_EXAMPLE = '2026-11-28T09:30:00Z'


def _region(key, value):
    if not isinstance(value, str) or not REGION_RE.match(value):
        raise SettingsError(
            f"{key}: {value!r} is not an AWS region name; write it like us-east-1")
    return value


def _regions(key, value):
    if not isinstance(value, list):
        raise SettingsError(
            f"{key}: expected a list of region names such as [us-east-1, eu-west-1], "
            f"got {type(value).__name__} {value!r}")
    if not value:
        raise SettingsError(f"{key}: the list is empty; name at least one region")
    return [_region(f"{key}[{i}]", v) for i, v in enumerate(value)]


def _timestamp(key, value):
    if isinstance(value, datetime.datetime):
        # YAML turns an unquoted timestamp into a datetime; keep the UTC rule.
        if value.tzinfo is None or value.utcoffset() != datetime.timedelta(0):
            raise SettingsError(
                f"{key}: {value} has no UTC offset; write it like {TIMESTAMP_EXAMPLE}")
        return value.strftime('%Y-%m-%dT%H:%M:%SZ')
    if not isinstance(value, str) or not TIMESTAMP_RE.match(value):
        raise SettingsError(
            f"{key}: {value!r} is not an ISO-8601 UTC timestamp with a time of day; "
            f"write it like {TIMESTAMP_EXAMPLE}")
    try:
        datetime.datetime.fromisoformat(value.replace('Z', '+00:00'))
    except ValueError:
        raise SettingsError(
            f"{key}: {value!r} is not a valid date and time; write it like "
            f"{TIMESTAMP_EXAMPLE}") from None
    return value


# A future incident_start is a typo (the year) or local time written as UTC: every
# "since the incident" check would then find nothing. Clocks disagree by seconds, so a
# start up to CLOCK_SKEW ahead of this machine's clock is accepted.
CLOCK_SKEW = datetime.timedelta(minutes=5)


def _incident_start(key, value):
    value = _timestamp(key, value)
    start = parse_timestamp(value)
    now = datetime.datetime.now(datetime.timezone.utc)
    if start > now + CLOCK_SKEW:
        ahead = start - now
        hours = ahead.total_seconds() / 3600
        ahead_text = f"{ahead.days} days" if ahead.days >= 2 else f"{hours:.1f} hours"
        raise SettingsError(
            f"{key}: {value} is {ahead_text} in the future (now {now:%Y-%m-%dT%H:%M:%SZ}); "
            f"a typo in the year, or local time written as UTC? Write the time in UTC, "
            f"like {TIMESTAMP_EXAMPLE}")
    return value


def _names(key, value):
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise SettingsError(
            f"{key}: expected a list of names such as [alice, deploy-bot], got {value!r}")
    return value


def _accounts(key, value):
    if not isinstance(value, list):
        raise SettingsError(
            f"{key}: expected a list of 12-digit account ids in quotes, got {value!r}")
    out = []
    for i, v in enumerate(value):
        # An unquoted id is read by YAML as an int and loses leading zeros.
        if isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 10 ** 12:
            v = '%012d' % v
        if not isinstance(v, str) or not ACCOUNT_RE.match(v):
            raise SettingsError(
                f"{key}[{i}]: {v!r} is not a 12-digit AWS account id; quote it, "
                f"like '123456789012'")
        out.append(v)
    return out


def _positive_number(key, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 \
            or value == float('inf'):  # .nan and .inf in YAML are floats too
        raise SettingsError(f"{key}: expected a number greater than 0, got {value!r}")
    return value


def _whole_days(key, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SettingsError(f"{key}: expected a whole number of days (0 or more), got {value!r}")
    return value


def _string(key, value):
    if not isinstance(value, str):
        raise SettingsError(f"{key}: expected a string, got {value!r}")
    return value


def _identifier(key, value):
    if not isinstance(value, str) or not re.match(r'^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$', value):
        raise SettingsError(
            f"{key}: {value!r} must be 1-128 letters, digits, '.', '_', ':' or '-' "
            f"(it becomes a tag value and part of object keys)")
    return value


def _bucket(key, value):
    if value in ('', None):
        return ''
    if not isinstance(value, str) or not re.match(r'^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$', value):
        raise SettingsError(
            f"{key}: {value!r} is not an S3 bucket name; give the bare name, or '' for none")
    return value


def _key_ids(key, value):
    if not isinstance(value, list):
        raise SettingsError(
            f"{key}: expected a list of access key ids such as [AKIAIOSFODNN7EXAMPLE], got {value!r}")
    for i, v in enumerate(value):
        if not isinstance(v, str) or not re.match(r'^[A-Z0-9]{16,128}$', v):
            raise SettingsError(f"{key}[{i}]: {v!r} is not an access key id (like AKIAIOSFODNN7EXAMPLE)")
    return value


def _patterns(key, value):
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise SettingsError(
            f"{key}: expected a list of patterns such as ['p4d.*', 'g5.*'], got {value!r}")
    return value


def _contacts(key, value):
    if not isinstance(value, dict):
        raise SettingsError(
            f"{key}: expected a mapping of contact type (security, billing, operations) "
            f"to its expected email address, got {value!r}")
    allowed = {'security', 'billing', 'operations'}
    for k, v in value.items():
        if k not in allowed:
            raise SettingsError(
                f"{key}.{k}: unknown contact type; use security, billing or operations")
        if not isinstance(v, str) or '@' not in v:
            raise SettingsError(f"{key}.{k}: {v!r} is not an email address")
    return value


def _boolean(key, value):
    if not isinstance(value, bool):
        raise SettingsError(f"{key}: expected true or false, got {value!r}")
    return value


def _count(key, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SettingsError(f"{key}: expected a whole number, 1 or more, got {value!r}")
    return value


def _minutes(key, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SettingsError(f"{key}: expected a whole number of minutes (0 or more), got {value!r}")
    return value


def _continuation(key, value):
    # bucket name -> token printed by restore-object-versions (see restore_s3)
    if value in (None, ''):
        return {}
    if not isinstance(value, dict):
        raise SettingsError(
            f"{key}: expected a mapping of bucket name to the continuation token a previous "
            f"run printed (or {{}}), got {value!r}")
    for k, v in value.items():
        _bucket(f"{key}.{k}", k)
        if not isinstance(v, str) or not re.match(r'^[A-Za-z0-9_=-]+$', v):
            raise SettingsError(
                f"{key}.{k}: {v!r} is not a continuation token; copy it from "
                f"restore-continuation.yml in the previous run's output")
    return value


def _role_name(key, value):
    # A role name, optionally with its path; the account is filled in where it is used.
    if value in ('', None):
        return ''
    if not isinstance(value, str) or not re.match(r'^(/[\w+=,.@-]+)*/?[\w+=,.@-]{1,64}$', value) \
            or value.startswith('arn:'):
        raise SettingsError(
            f"{key}: {value!r} is not an IAM role name; give the name (or path/name), like "
            f"CustodianPackReact, not an ARN")
    return value.lstrip('/')


def _s3_output(key, value):
    if value in ('', None):
        return ''
    if not isinstance(value, str) or not re.match(
            r'^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]([/?].*)?$', value):
        raise SettingsError(
            f"{key}: {value!r}: Lambda functions write to S3; give s3://bucket/prefix, "
            f"or '' for CloudWatch Logs only")
    return value


SNS_TOPIC_RE = re.compile(r'^(arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:)?[\w-]{1,256}(\.fifo)?$')
SQS_QUEUE_RE = re.compile(r'^(https://[\w.-]+/\d{12}/[\w-]{1,80}(\.fifo)?|'
                          r'(arn:aws[a-z-]*:sqs:[a-z0-9-]+:\d{12}:)?[\w-]{1,80}(\.fifo)?)$')
TRANSPORT_EXAMPLE = ("{type: sns, topic: 'arn:aws:sns:us-east-1:123456789012:security-alerts'} "
                     "or {type: sqs, queue: 'https://sqs.us-east-1.amazonaws.com/123456789012/"
                     "custodian-mailer'}")


def _transport(key, value):
    """c7n's notify transport: SNS topic or SQS queue, as the notify action takes it."""
    if value in (None, {}):
        return {}
    if not isinstance(value, dict) or value.get('type') not in ('sns', 'sqs'):
        raise SettingsError(f"{key}: expected {TRANSPORT_EXAMPLE}, got {value!r}")
    field, pattern = ('topic', SNS_TOPIC_RE) if value['type'] == 'sns' else ('queue', SQS_QUEUE_RE)
    allowed = {'type', field} | ({'attributes'} if value['type'] == 'sns' else set())
    extra = sorted(set(value) - allowed)
    if extra:
        raise SettingsError(f"{key}: unexpected {', '.join(extra)} for a {value['type']} "
                            f"transport; expected {TRANSPORT_EXAMPLE}")
    target = value.get(field)
    if not isinstance(target, str) or not pattern.match(target):
        raise SettingsError(
            f"{key}.{field}: {target!r} is not an SNS topic ARN or name" if field == 'topic' else
            f"{key}.{field}: {target!r} is not an SQS queue URL, ARN or name")
    attributes = value.get('attributes')
    if attributes is not None and (not isinstance(attributes, dict) or 'mtype' in attributes or
                                   not all(isinstance(v, str) for v in attributes.values())):
        raise SettingsError(f"{key}.attributes: a mapping of name to string value, without "
                            f"'mtype' (c7n reserves it)")
    return value


def _recipients(key, value):
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise SettingsError(
            f"{key}: expected a list of recipients for c7n-mailer such as "
            f"[security@example.com], got {value!r}")
    return value


@dataclass(frozen=True)
class Setting:
    name: str
    check: Callable[[str, Any], Any]
    default: Any
    help: str


SETTINGS = {s.name: s for s in (
    Setting('allowed_regions', _regions, REQUIRED,
            'Regions the account is meant to use. Resources anywhere else are findings (R3.3).'),
    Setting('incident_start', _incident_start, REQUIRED,
            'ISO-8601 UTC timestamp, e.g. 2026-11-28T09:30:00Z. Anything created, used or '
            'changed at or after it is suspect.'),
    Setting('known_users', _names, [],
            'IAM user names (or shell patterns such as svc-*) that are expected. Others are '
            'findings (R4.1).'),
    Setting('known_roles', _names, [],
            'IAM role names (or name patterns with *) that are expected. Others are findings (R4.1).'),
    Setting('known_accounts', _accounts, [],
            'AWS Organizations member account ids that are expected (R4.3).'),
    Setting('trusted_accounts', _accounts, [],
            'External account ids that trust policies, shares and bucket policies may name (R4.2).'),
    Setting('stale_days', _positive_number, 90,
            'Credentials unused for this many days are flagged (R1.1).'),
    Setting('global_region', _region, 'us-east-1',
            'The one region in which policies for global services (IAM, Organizations, '
            'Route 53 Domains) run, so they run once per account. Include it in every sweep.'),
    Setting('incident_id', _identifier, 'incident',
            'Short id of this incident; respond actions tag snapshots and evidence with it.'),
    Setting('evidence_bucket', _bucket, '',
            'S3 bucket that receives evidence (instance and user descriptions) before '
            'anything is changed. Empty: evidence goes to the policy output only.'),
    Setting('key_grace_days', _whole_days, 7,
            'Days a deactivated access key is kept before the delete policy may remove it (X1).'),
    Setting('keep_access_keys', _key_ids, [],
            'Access key ids the X1 respond policies leave active and never delete: the '
            'replacement key, or an old key reactivated because an application broke.'),
    Setting('unusual_instance_types', _patterns,
            ['p2.*', 'p3.*', 'p3dn.*', 'p4d.*', 'p4de.*', 'p5.*', 'p5e.*', 'p5en.*', 'p6*',
             'g3.*', 'g3s.*', 'g4dn.*', 'g4ad.*', 'g5.*', 'g5g.*', 'g6.*', 'g6e.*', 'gr6.*',
             'inf1.*', 'inf2.*', 'trn1.*', 'trn1n.*', 'trn2.*', 'dl1.*', 'dl2q.*',
             'x1.*', 'x1e.*', 'x2*', 'u-*', '*.metal', '*.24xlarge', '*.32xlarge',
             '*.48xlarge'],
            'Instance type patterns (shell-style) that mining attacks favour: GPU, '
            'accelerator and very large instances.'),
    Setting('cost_increase_ratio', _positive_number, 1.5,
            'R3.1 flags a service or region whose spend this month is this many times '
            'last month\'s (pro-rated to the same number of days).'),
    Setting('cost_min_amount', _positive_number, 10,
            'R3.1 ignores services and regions below this amount (USD) this month.'),
    Setting('expected_contacts', _contacts, {},
            'Expected alternate contact email per type (security, billing, operations) (X9). '
            'A missing contact is always a finding; a different email is one when listed here.'),
    Setting('restore_preview', _boolean, False,
            'X8: true makes the recover actions only report what they would restore '
            '(dry-run-report); `make recover-preview` sets it.'),
    Setting('restore_max_objects', _count, 50000,
            'X8: the most S3 objects (keys) restore-object-versions examines in one run; '
            'the run then records a continuation token per bucket.'),
    Setting('restore_continuation', _continuation, {},
            'X8: bucket name -> continuation token from the previous run\'s '
            'restore-continuation.yml, to resume an S3 restore where it stopped.'),
    Setting('restore_pitr_margin_minutes', _minutes, 5,
            'X8: an RDS point-in-time restore goes to incident_start minus this many minutes.'),
    Setting('react_role', _role_name, 'CustodianPackReact',
            'Real-time containment: the execution role of the policies/react functions '
            '(a name; it must exist in each account they are deployed to).'),
    Setting('react_member_role', _role_name, '',
            'Real-time containment from the management account or Health delegated '
            'administrator: the role the functions assume in the member account a notice '
            'names. Empty: act only on notices for the function\'s own account.'),
    Setting('react_output', _s3_output, '',
            'Real-time containment: s3://bucket/prefix where the functions write their '
            'output (what they did). Empty: CloudWatch Logs only.'),
    Setting('notify_transport', _transport, {},
            'Where the policies/react functions send c7n notify messages: an SNS topic or '
            'an SQS queue (c7n-mailer reads either). Required to deploy them.'),
    Setting('notify_to', _recipients, [],
            'Recipients c7n-mailer delivers the react notices to (emails, Slack webhooks, ...).'),
)}


# Stand-ins for required settings, used only to validate a policy before its
# variables are known (``custodian validate`` has no --vars-file).
SAMPLES = {'allowed_regions': ['us-east-1'], 'incident_start': TIMESTAMP_EXAMPLE,
           # react policies refuse to deploy without a transport: validate them with one
           'notify_transport': {'type': 'sns',
                                'topic': 'arn:aws:sns:us-east-1:123456789012:sample'},
           'notify_to': ['security@example.com']}


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
                found.update(m for m in re.findall(r'\{(\w+)\}', v) if m in SETTINGS)
        elif isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, (list, tuple)):
            stack.extend(v)
    return found


_REF_RE = re.compile(r'\{(\w+)\}')


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
    whole = _REF_RE.fullmatch(obj)
    if whole and whole.group(1) in known:
        import copy
        return copy.deepcopy(known[whole.group(1)])
    return _REF_RE.sub(lambda m: str(known[m.group(1)]) if m.group(1) in known else m.group(0), obj)


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
            out[name] = spec.check(name, values[name])
        except SettingsError as e:
            raise SettingsError(f"{source}: {e}") from None
    return out


def load(path, strict=True):
    """Read and check a vars file; raise SettingsError with one line on any problem."""
    try:
        with open(path, encoding='utf-8') as fh:
            data = yaml.safe_load(fh)
    except FileNotFoundError:
        raise SettingsError(f"{path}: vars file not found") from None
    except yaml.YAMLError as e:
        raise SettingsError(yaml_error(path, e)) from None
    except UnicodeDecodeError as e:
        raise SettingsError(f"{path}: not UTF-8 text (byte {e.start}); save it as UTF-8") from None
    except OSError as e:
        raise SettingsError(f"{path}: cannot read the vars file ({e.strerror or e})") from None
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
