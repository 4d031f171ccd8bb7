"""Who did it: CloudTrail events kept in a resource's annotations.

Filters that look up CloudTrail keep the events in an annotation, in the
shape AWS returns them: LookupEvents records (``EventName``, ``EventTime``,
``Username``, ``AccessKeyId``, ``CloudTrailEvent`` as a JSON string) or raw
CloudTrail records (``eventName``, ``eventTime``, ``userIdentity``,
``sourceIPAddress``, ``userAgent``). Any ``c7n:`` annotation holding such
events is read here, whatever its name, so the report shows who acted
without knowing each filter.
"""
import json


def event_record(ev):
    """A CloudTrail event as {event, time, principal, access_key_id, source_ip, user_agent}."""
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
    principal = (ident.get('arn') or issuer.get('arn') or ev.get('Username')
                 or ident.get('userName') or ('root' if ident.get('type') == 'Root' else ''))
    return {
        'event': str(name),
        'time': str(ev.get('EventTime') or detail.get('eventTime') or ''),
        'principal': str(principal or ''),
        'access_key_id': str(ev.get('AccessKeyId') or ident.get('accessKeyId') or ''),
        'source_ip': str(detail.get('sourceIPAddress') or ''),
        'user_agent': str(detail.get('userAgent') or ''),
    }


def events(value):
    """The CloudTrail events in an annotation value, or [] if it is not (only) events."""
    if not value or not isinstance(value, (dict, list)):
        return []
    items = value if isinstance(value, list) else [value]
    out = [e for e in (event_record(v) for v in items) if e]
    return out if len(out) == len(items) else []


def event_text(e):
    text = f"{e['event']} by {e['principal'] or 'an unknown principal'}"
    if e['access_key_id']:
        text += f" with key {e['access_key_id']}"
    if e['source_ip']:
        text += f" from {e['source_ip']}"
    if e['time']:
        text += f" at {e['time']}"
    return text


def events_text(evs, limit=3):
    text = '; '.join(event_text(e) for e in evs[:limit])
    return text + (f" (+{len(evs) - limit} more)" if len(evs) > limit else '')


def created_by(resource):
    """The earliest CloudTrail event in the resource's annotations (usually the
    one that created it), or None when no annotation carries CloudTrail events."""
    found = []
    for k, v in resource.items():
        if k.startswith('c7n:'):
            found.extend(events(v))
    return min(found, key=lambda e: e['time']) if found else None
