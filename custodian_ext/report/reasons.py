"""Why a resource was flagged: short, readable forms of the filters' annotations."""
import json

from custodian_ext.report import cloudtrail


def _keys(value):
    return 'keys ' + ', '.join(
        f"{k.get('AccessKeyId', k.get('key', '?'))}"
        f"{' (' + k['Status'] + ')' if k.get('Status') else ''}" for k in value)


def _markers(value):
    return 'quarantine marker: ' + ', '.join(m.get('PolicyName', '?') for m in value)


def _root(value):
    keys = value.get('keys') or []
    active = [k for k in keys if k.get('active')]
    used = [k.get('last_used_date') for k in keys if k.get('last_used_date')]
    text = f"root access keys present ({len(active)} active)"
    if used:
        text += f", last used {max(used)}"
    elif keys:
        text += ', never used'
    return text


def _stopped(value, resource):
    days = resource.get('c7n:stopped-days')
    return f"stopped since {value}" + (f" ({days} days)" if days is not None else '')


def _pre_incident_image(value):
    cur = value.get('current') or {}
    if 'launch_configuration' in value:
        return (f"launch configuration {value['launch_configuration']} (image "
                f"{cur.get('image_id')}) is newer than the incident; {value.get('note', '')}")
    if 'current_version' not in value:
        return value.get('note', '')
    text = f"now version {value['current_version']} (image {cur.get('image_id')})"
    pre = value.get('pre_incident')
    if pre:
        text += (f"; before the incident version {value['pre_incident_version']} "
                 f"(image {pre.get('image_id')})")
    if value.get('note'):
        text += f"; {value['note']}"
    return text


FORMATTERS = {
    'c7n:matched-keys': lambda v, r: _keys(v),
    'c7n:quarantine-markers': lambda v, r: _markers(v),
    'c7n:root-access-keys': lambda v, r: _root(v),
    'c7n:stopped-since': _stopped,
    'c7n:pre-incident-image': lambda v, r: _pre_incident_image(v),
}

# Annotations that only repeat what another one says.
HIDDEN = {'c7n:AccessKeys', 'c7n:stopped-days', 'c7n:match-type', 'c7n:MatchedFilters'}


def _ec2_facts(r):
    facts = [r.get('InstanceType'), (r.get('State') or {}).get('Name')]
    if r.get('InstanceLifecycle') == 'spot':
        facts.append('spot')
    if r.get('LaunchTime'):
        facts.append(f"launched {r['LaunchTime']}")
    return ', '.join(str(f) for f in facts if f)


# One line of plain facts per resource type, shown before the annotations.
FACTS = {
    'aws.ec2': _ec2_facts,
}


def register(annotation, formatter):
    """Add a formatter ``f(value, resource) -> str`` for an annotation key."""
    FORMATTERS[annotation] = formatter


def reasons(resource, limit=300, resource_type=None):
    out = []
    fact = FACTS.get(resource_type)
    if fact:
        text = fact(resource)
        if text:
            out.append(text)
    for k, v in resource.items():
        if not k.startswith('c7n:') or k in HIDDEN:
            continue
        fmt = FORMATTERS.get(k)
        if fmt:
            text = fmt(v, resource)
        elif cloudtrail.events(v):
            text = cloudtrail.events_text(cloudtrail.events(v))
        else:
            text = f"{k[4:]}: {v if isinstance(v, str) else json.dumps(v, default=str)}"
        if text:
            out.append(text if len(text) <= limit else text[:limit - 1] + '…')
    return out
