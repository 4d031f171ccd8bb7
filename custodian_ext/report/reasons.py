"""Why a resource was flagged: short, readable forms of the filters' annotations."""
import json


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


def _short_principal(label):
    """arn:aws:iam::1:user/bob -> user bob; assumed-role/R/session -> role R (session)."""
    label = label or '?'
    if ':assumed-role/' in label:
        parts = label.split(':assumed-role/', 1)[1].split('/')
        return f"role {parts[0]}" + (f" ({parts[1]})" if len(parts) > 1 else '')
    if label.endswith(':root'):
        return 'root'
    if ':user/' in label:
        return 'user ' + label.rsplit('/', 1)[-1]
    return label


def _event(e):
    names = [r.get('Name') for r in e.get('Resources') or () if r.get('Name')]
    what = e.get('EventName', '?') + (f"({', '.join(names[:2])})" if names else '')
    text = f"{what} by {_short_principal(e.get('Principal'))}"
    if e.get('SourceIPAddress'):
        text += f" from {e['SourceIPAddress']}"
    if e.get('EventTime'):
        text += f" at {e['EventTime']}"
    return text


def _events(value):
    if not value:
        return 'no matching events (history not read to the end)'
    shown = '; '.join(_event(e) for e in value[:3])
    more = f"; and {len(value) - 3} more" if len(value) > 3 else ''
    return f"{len(value)} event(s): {shown}{more}"


def _history(value):
    notes = []
    if value.get('CutShort'):
        notes.append(f"history cut short for {', '.join(value['CutShort'])}: older events not read")
    if value.get('WindowClamped'):
        notes.append(value['WindowClamped'])
    if value.get('Omitted'):
        notes.append(f"{value['Omitted']} older events not listed")
    return '; '.join(notes)


def _credential_use(value):
    parts = []
    for c in value:
        name = c.get('Credential', '?') + (f" {c['AccessKeyId']}" if c.get('AccessKeyId') else '')
        used = c.get('LastUsed') or 'never'
        where = ', '.join(x for x in (c.get('LastUsedService'), c.get('LastUsedRegion'))
                          if x and x != 'N/A')
        parts.append(f"{name} last used {used}{' (' + where + ')' if where else ''}: "
                     f"{c.get('Reason', '')}")
    return '; '.join(parts)


def _used_since(value):
    return 'used ' + ', '.join(
        f"{u.get('ServiceNamespace')} at {u.get('LastAuthenticated')}" for u in value[:5]) + (
        f" and {len(value) - 5} more services" if len(value) > 5 else '')


def _management(value):
    yn = {True: 'yes', False: 'no'}
    return (f"records management reads: {yn[bool(value.get('Read'))]}, writes: "
            f"{yn[bool(value.get('Write'))]} ({value.get('Selectors')} selectors)")


def _cost(value):
    parts = []
    for c in value:
        kind = 'service' if c.get('Dimension') == 'SERVICE' else 'region'
        if c.get('Change') == 'new':
            parts.append(f"new {kind} {c['Key']}: {c['ThisMonth']:.2f} this month")
        else:
            parts.append(f"{kind} {c['Key']} x{c.get('Ratio')}: {c['ThisMonth']:.2f} vs "
                         f"{c['LastMonthProRated']:.2f} pro-rated")
    return '; '.join(parts)


def _exposed(value):
    return '; '.join(f"{k.get('AccessKeyId')} ({k.get('UserName')}) {k.get('FraudType') or 'exposed'}"
                     f"{', case ' + k['CaseId'] if k.get('CaseId') else ''}" for k in value)


def _admin(value):
    return 'administrator access: ' + '; '.join(
        f"{a.get('Source')} {a.get('Policy')}" + (f" via {a['Via']}" if a.get('Via') else '')
        for a in value)


def _anchors(value):
    return '; '.join(f"trust anchor {a.get('Name')} ({a.get('SourceType')}, "
                     f"{'enabled' if a.get('Enabled') else 'disabled'}) created {a.get('CreatedAt')}"
                     for a in value)


def _org_accounts(value):
    return '; '.join(f"account {a.get('Id')}" + (f" ({a['Name']})" if a.get('Name') else '')
                     + ': ' + ', '.join(a.get('Reasons') or ()) for a in value)


def _contacts(value):
    out = []
    for c in value:
        if c.get('Problem') == 'missing':
            out.append(f"{c.get('Type', '?').lower()} contact missing")
        else:
            out.append(f"{c.get('Type', '?').lower()} contact is {c.get('EmailAddress')} "
                       f"(expected {c.get('Expected')})")
    return '; '.join(out)


def _trails(value):
    if not value:
        return 'no multi-region trail, and no trail in this region'
    return 'no multi-region trail; trails: ' + ', '.join(
        f"{t.get('Name')} ({t.get('HomeRegion')}, "
        f"{'multi-region' if t.get('IsMultiRegionTrail') else 'single-region'})" for t in value)


def _trail_status(value):
    if value.get('IsLogging'):
        return 'logging'
    stopped = value.get('StopLoggingTime')
    return 'not logging' + (f" (stopped {stopped})" if stopped else '')


FORMATTERS = {
    'c7n:cloudtrail-events': lambda v, r: _events(v),
    'c7n:cloudtrail-history': lambda v, r: _history(v),
    'c7n:credential-use': lambda v, r: _credential_use(v),
    'c7n:used-since': lambda v, r: _used_since(v),
    'c7n:management-events': lambda v, r: _management(v),
    'c7n:cost-changes': lambda v, r: _cost(v),
    'c7n:exposed-access-keys': lambda v, r: _exposed(v),
    'c7n:unknown-principal': lambda v, r: str(v),
    'c7n:admin-access': lambda v, r: _admin(v),
    'c7n:untrusted-trust': lambda v, r: 'trust policy names ' + ', '.join(v),
    'c7n:roles-anywhere-trust-anchors': lambda v, r: _anchors(v),
    'c7n:organization-accounts': lambda v, r: _org_accounts(v),
    'c7n:alternate-contacts': lambda v, r: _contacts(v),
    'c7n:login-profile': lambda v, r: f"console password created {v.get('CreateDate')}",
    'c7n:cloudtrails': lambda v, r: _trails(v),
    'c7n:TrailStatus': lambda v, r: _trail_status(v),
    'c7n:matched-keys': lambda v, r: _keys(v),
    'c7n:quarantine-markers': lambda v, r: _markers(v),
    'c7n:root-access-keys': lambda v, r: _root(v),
    'c7n:stopped-since': _stopped,
}

# Annotations that only repeat what another one says.
HIDDEN = {'c7n:AccessKeys', 'c7n:stopped-days', 'c7n:match-type', 'c7n:MatchedFilters',
          'c7n:LoginProfile', 'c7n:TrailEventSelectors'}


def _ec2_facts(r):
    facts = [r.get('InstanceType'), (r.get('State') or {}).get('Name')]
    if r.get('InstanceLifecycle') == 'spot':
        facts.append('spot')
    if r.get('LaunchTime'):
        facts.append(f"launched {r['LaunchTime']}")
    return ', '.join(str(f) for f in facts if f)


def _iam_facts(r):
    facts = []
    if r.get('Path') and r['Path'] != '/':
        facts.append(f"path {r['Path']}")
    if r.get('CreateDate'):
        facts.append(f"created {r['CreateDate']}")
    return ', '.join(facts)


# One line of plain facts per resource type, shown before the annotations.
FACTS = {
    'aws.ec2': _ec2_facts,
    'aws.iam-user': _iam_facts,
    'aws.iam-role': _iam_facts,
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
        else:
            text = f"{k[4:]}: {v if isinstance(v, str) else json.dumps(v, default=str)}"
        if text:
            out.append(text if len(text) <= limit else text[:limit - 1] + '…')
    return out
