"""CloudTrail records -> the events of the ``c7n:activity`` annotation.

A *record* is the dict CloudTrail writes (one member of a log file's
``Records``, equal to ``json.loads(LookupEvents Event['CloudTrailEvent'])``).
Both sources of the activity review hand over records, and everything here
reads the record alone, so the two sources give identical events.
"""
import datetime
import functools
import os

import yaml
from c7n.utils import yaml_load

from custodian_ext.errors import PackError

RESOURCES_FILE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                              'data', 'activity-resources.yml')
MAX_RESOURCES = 20
UNCLASSIFIED = 'unclassified'
SEVERITIES = ('critical', 'high', 'medium', 'low', 'info')
# Credential-issuing STS calls: their responseElements name the new credentials.
MINTING_CALLS = ('AssumeRole', 'AssumeRoleWithSAML', 'AssumeRoleWithWebIdentity',
                 'GetSessionToken', 'GetFederationToken')


def severity_rank(severity):
    """0 for critical ... 4 for info (unknown values rank below info)."""
    return SEVERITIES.index(severity) if severity in SEVERITIES else len(SEVERITIES)


def at_least(severity, minimum):
    return severity_rank(severity) <= severity_rank(minimum)


def event_time(record):
    """The record's ``eventTime`` as an aware datetime (None if missing or malformed)."""
    value = record.get('eventTime')
    if not isinstance(value, str):
        return None
    try:
        # (Lambda's python3.10 runtime parses no 'Z')
        when = datetime.datetime.fromisoformat(value.replace('Z', '+00:00'))  # noqa: FURB162
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=datetime.timezone.utc)


def iso(when):
    return when.astimezone(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')


def access_key(record):
    return (record.get('userIdentity') or {}).get('accessKeyId')


def principal_label(identity):
    identity = identity or {}
    if identity.get('arn'):
        return identity['arn']
    if identity.get('type') == 'AWSAccount':
        return f"account {identity.get('accountId')}"
    if identity.get('type') == 'AWSService':
        return identity.get('invokedBy') or 'AWS service'
    return identity.get('principalId') or identity.get('type') or 'unknown'


def minted_key(record):
    """The access key id of the credentials a successful STS call handed out, or None."""
    if record.get('eventName') not in MINTING_CALLS or record.get('errorCode'):
        return None
    creds = (record.get('responseElements') or {}).get('credentials') or {}
    return creds.get('accessKeyId') if isinstance(creds, dict) else None


@functools.cache
def resource_map(path=RESOURCES_FILE):
    """{event source: {event name or '*': {parameter or responseElements path: type}}}."""
    try:
        with open(path) as fh:
            data = yaml_load(fh)
    except (OSError, yaml.YAMLError) as e:
        raise PackError(f"{path}: cannot read the activity resource map: {e}") from None
    sources = (data or {}).get('sources')
    if not isinstance(sources, dict):
        raise PackError(f"{path}: expected a top-level 'sources:' mapping")
    return sources


def _deep(value, name):
    """Values of key ``name`` (or ``name.N``, the query-protocol form) anywhere in ``value``."""
    if isinstance(value, dict):
        for k, v in value.items():
            base = k.rsplit('.', 1)[0] if k.rsplit('.', 1)[-1].isdigit() else k
            if base == name and isinstance(v, (str, list)):
                yield from ([v] if isinstance(v, str) else [x for x in v if isinstance(x, str)])
            elif isinstance(v, (dict, list)):
                yield from _deep(v, name)
    elif isinstance(value, list):
        for v in value:
            yield from _deep(v, name)


def _path(value, dotted):
    for part in dotted.split('.'):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value if isinstance(value, str) else None


def resources(record):
    """[{Type, Name}] of the resources a record names, in a stable order, at most 20."""
    found = []
    for r in record.get('resources') or ():
        if isinstance(r, dict) and (r.get('ARN') or r.get('ARNPrefix')):
            found.append((r.get('type'), r.get('ARN') or r.get('ARNPrefix')))
    per_source = resource_map().get(record.get('eventSource')) or {}
    rules = dict(per_source.get('*') or {}, **(per_source.get(record.get('eventName')) or {}))
    params = record.get('requestParameters') or {}
    response = record.get('responseElements') or {}
    for name, rtype in rules.items():
        if name.startswith('responseElements.'):
            value = _path(response, name.split('.', 1)[1])
            if value:
                found.append((rtype, value))
        else:
            found.extend((rtype, v) for v in _deep(params, name))
    out, seen = [], set()
    for rtype, name in found:
        if (rtype, name) not in seen:
            seen.add((rtype, name))
            out.append({'Type': rtype, 'Name': name})
    return out[:MAX_RESOURCES]


def classification_fields(classification, record):
    """The catalogue's fields of the annotation (``Tactic`` ... ``CatalogueId``).

    A call the catalogue does not know is still kept (tactic ``unclassified``):
    severity ``low`` for a write, ``info`` for a read.
    """
    if classification is None:
        return {'Tactic': UNCLASSIFIED, 'TacticId': None, 'Technique': None,
                'Severity': 'info' if record.get('readOnly') in (True, 'true') else 'low',
                'CatalogueId': None, 'Title': None}
    return {'Tactic': classification.tactic, 'TacticId': classification.tactic_id,
            'Technique': classification.technique, 'Severity': classification.severity,
            'CatalogueId': classification.id, 'Title': classification.title}


def event(record, source, classification, suspect):
    """One event of ``c7n:activity``, from a record (see README "Activity review")."""
    identity = record.get('userIdentity') or {}
    when = event_time(record)
    out = {
        'EventId': record.get('eventID'),
        'EventName': record.get('eventName'),
        'EventSource': record.get('eventSource'),
        'EventTime': iso(when) if when else record.get('eventTime'),
        'Region': record.get('awsRegion'),
        'Principal': principal_label(identity),
        'PrincipalType': identity.get('type'),
        'AccessKeyId': identity.get('accessKeyId'),
        'SourceIPAddress': record.get('sourceIPAddress'),
        'UserAgent': record.get('userAgent'),
        'ErrorCode': record.get('errorCode'),
        'Resources': resources(record),
    }
    out.update(classification_fields(classification, record))
    out['Suspect'] = suspect
    out['Source'] = source
    return out
