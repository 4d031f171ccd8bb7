"""Who did it: CloudTrail events kept in a resource's annotations.

Filters that look up CloudTrail keep the events in an annotation. Three
shapes are read: LookupEvents records as AWS returns them (``EventName``,
``EventTime``, ``Username``, ``AccessKeyId``, ``Resources``,
``CloudTrailEvent`` as a JSON string), raw CloudTrail records
(``eventName``, ``eventTime``, ``userIdentity``, ``sourceIPAddress``,
``userAgent``), and flattened records (``EventName``, ``EventTime``,
``Principal``, ``AccessKeyId``, ``SourceIPAddress``, ``UserAgent``,
``Resources`` with ``Name``). Any ``c7n:`` annotation holding such events is
read here, whatever its name, so the report shows who acted without knowing
each filter.
"""
import json


def _resource_names(ev, detail):
    names = []
    for r in ev.get('Resources') or detail.get('resources') or ():
        if isinstance(r, dict):
            name = r.get('ResourceName') or r.get('Name') or r.get('ARN')
            if name and name not in names:
                names.append(str(name))
    return names


def event_record(ev):
    """A CloudTrail event as {event, time, principal, access_key_id, source_ip, user_agent,
    resources}."""
    if not isinstance(ev, dict):
        return None
    raw = ev.get('CloudTrailEvent')
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raw = None
    detail = raw if isinstance(raw, dict) else ev
    name = ev.get('EventName') or detail.get('eventName')
    if not name:
        return None
    ident = detail.get('userIdentity') or {}
    issuer = (ident.get('sessionContext') or {}).get('sessionIssuer') or {}
    principal = (ev.get('Principal') or ident.get('arn') or issuer.get('arn')
                 or ev.get('Username') or ident.get('userName')
                 or ('root' if ident.get('type') == 'Root' else ''))
    return {
        'event': str(name),
        'time': str(ev.get('EventTime') or detail.get('eventTime') or ''),
        'principal': str(principal or ''),
        'access_key_id': str(ev.get('AccessKeyId') or ident.get('accessKeyId') or ''),
        'source_ip': str(ev.get('SourceIPAddress') or detail.get('sourceIPAddress') or ''),
        'user_agent': str(ev.get('UserAgent') or detail.get('userAgent') or ''),
        'resources': _resource_names(ev, detail),
    }


def events(value):
    """The CloudTrail events in an annotation value, or [] if it is not (only) events."""
    if not value or not isinstance(value, (dict, list)):
        return []
    items = value if isinstance(value, list) else [value]
    out = [e for e in (event_record(v) for v in items) if e]
    return out if len(out) == len(items) else []


def event_text(e):
    text = e['event']
    if e['resources']:
        text += ' ' + ', '.join(e['resources'][:2])
    text += f" by {e['principal'] or 'an unknown principal'}"
    if e['access_key_id']:
        text += f" with key {e['access_key_id']}"
    if e['source_ip']:
        text += f" from {e['source_ip']}"
    if e['time']:
        text += f" at {e['time']}"
    return text


def events_lines(evs, width=300, first=3):
    """One line per event (the first few, in time order), then how many more."""
    evs = sorted(evs, key=lambda e: e['time'])
    lines = [t if len(t) <= width else t[:width - 1] + '…'
             for t in (event_text(e) for e in evs[:first])]
    if len(evs) > first:
        lines.append(f"and {len(evs) - first} more CloudTrail event(s)")
    return lines


def created_by(resource):
    """The earliest CloudTrail event in the resource's annotations (usually the
    one that created it), or None when no annotation carries CloudTrail events."""
    found = []
    for k, v in resource.items():
        if k.startswith('c7n:'):
            found.extend(events(v))
    return min(found, key=lambda e: e['time']) if found else None
