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


def _notice(value):
    source = {'health': 'AWS Health', 'trusted-advisor': 'Trusted Advisor'}.get(
        value.get('kind'), value.get('kind'))
    text = f"{source} notice {value.get('event_id')} at {value.get('time')}"
    return text + (f" ({value['reference']})" if value.get('reference') else '')


def _created(value, resource):
    source = resource.get('c7n:created-from')
    return f"first launched {value}" + (f" ({source})" if source else '')


def _cluster_activity(value):
    text = f"first activity {value.get('first_activity')} ({value.get('first_activity_of')})"
    if value.get('nothing_older'):
        text += ', nothing older in the cluster'
    if value.get('new_services'):
        text += ', new services: ' + ', '.join(value['new_services'])
    return text


def _shared_with(value):
    parts = []
    if value.get('public'):
        parts.append('PUBLIC (everyone)')
    if value.get('accounts'):
        parts.append('shared with untrusted ' + ', '.join(value['accounts']))
    return '; '.join(parts)


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
    return '; '.join(f"{k.get('AccessKeyId')} ({k.get('UserName')}) "
                     f"{k.get('FraudType') or 'exposed'}"
                     f"{', case ' + k['CaseId'] if k.get('CaseId') else ''}" for k in value)


def _admin(value):
    return 'administrator access: ' + '; '.join(
        f"{a.get('Source')} {a.get('Policy')}" + (f" via {a['Via']}" if a.get('Via') else '')
        for a in value)


def _anchors(value):
    return '; '.join(f"trust anchor {a.get('Name')} ({a.get('SourceType')}, "
                     f"{'enabled' if a.get('Enabled') else 'disabled'}) "
                     f"created {a.get('CreatedAt')}"
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


def _trail_bucket(value):
    bucket = f"bucket {value.get('Bucket')}"
    if value.get('Problem'):
        return f"{bucket}: {value['Problem']}"
    parts = []
    for r in value.get('Rules') or ():
        parts.append(f"lifecycle rule {r.get('Rule')}"
                     + (f" (prefix {r['Prefix']!r})" if r.get('Prefix') else '')
                     + f" {r.get('Expiration')}" + (f", {r['Note']}" if r.get('Note') else ''))
    if value.get('Recoverable'):
        parts.append(value['Recoverable'])
    for g in value.get('Grants') or ():
        parts.append(f"policy{' statement ' + g['Sid'] if g.get('Sid') else ''} lets "
                     f"{', '.join(g.get('Principals') or ['?'])} "
                     f"{', '.join(g.get('Actions') or ())}")
    return f"{bucket} (logs under {value.get('LogPrefix')}): " + '; '.join(parts)


def _object_changes(value):
    if value.get('Unreadable'):
        text = f"versions could not be read ({value['Unreadable']})"
    else:
        text = (f"{value.get('Deleted', 0)} object(s) deleted and {value.get('Overwritten', 0)} "
                f"overwritten since {value.get('Since')}")
        if value.get('First'):
            text += f" (from {value['First']} to {value['Last']})"
    shown = [f"{o['Key']} {o['Change']} {o['Time']}" for o in (value.get('Objects') or ())[:3]]
    if shown:
        text += ': ' + ', '.join(shown)
        total = value.get('Deleted', 0) + value.get('Overwritten', 0) + value.get('Unclear', 0)
        if total > len(shown):
            text += f" and {total - len(shown)} more"
    extra = [f"{value[k]} {label}" for k, label in (
        ('Unclear', 'unclear (version and delete marker share a timestamp)'),
        ('Restored', 'already restored'), ('New', 'created since')) if value.get(k)]
    if extra:
        text += '; ' + ', '.join(extra)
    examined = value.get('Examined') or {}
    text += f"; {examined.get('Versions', 0)} versions of {examined.get('Keys', 0)} objects read"
    cut = value.get('CutShort')
    if cut:
        text += (f"; CUT SHORT at object_scan_max_versions ({cut.get('Limit')}): objects from "
                 f"{cut.get('NextKey')!r} on were not examined")
    return text


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
    'c7n:pre-incident-image': lambda v, r: _pre_incident_image(v),
    # R2.1 trail bucket, X8 S3 object changes
    'c7n:trail-bucket-risk': lambda v, r: _trail_bucket(v),
    'c7n:object-changes': lambda v, r: _object_changes(v),
    'c7n:object-changes-not-checkable': lambda v, r: v.get('Reason', ''),
    # X6
    'c7n:created': _created,
    'c7n:unusual-instance-type': lambda v, r: (
        f"type {r.get('InstanceType')} matches unusual_instance_types pattern {v!r}"),
    'c7n:cluster-activity': lambda v, r: _cluster_activity(v),
    # R4.2 shares
    'c7n:shared-with': lambda v, r: _shared_with(v),
    'c7n:untrusted-principals': lambda v, r: 'resource policy lets in ' + ', '.join(v),
    'c7n:foreign-layers': lambda v, r: 'loads layers of untrusted accounts: ' + ', '.join(v),
    # X1 in real time (policies/react)
    'c7n:exposed-key-notice': lambda v, r: _notice(v),
    'c7n:exposed-key': lambda v, r: '; '.join(
        f"{k.get('AccessKeyId')}: {k.get('reason') or k.get('outcome')}" for k in v or ()),
}

# Annotations that only repeat what another one says.
HIDDEN = {'c7n:AccessKeys', 'c7n:stopped-days', 'c7n:match-type', 'c7n:MatchedFilters',
          'c7n:created-from', 'c7n:CrossAccountViolations', 'c7n:Policy',
          'c7n:LoginProfile', 'c7n:TrailEventSelectors'}


def _ec2_facts(r):
    facts = [r.get('InstanceType'), (r.get('State') or {}).get('Name')]
    if r.get('InstanceLifecycle') == 'spot':
        facts.append('spot')
    if r.get('LaunchTime'):
        facts.append(f"launched {r['LaunchTime']}")
    return ', '.join(str(f) for f in facts if f)


def _facts(*items):
    return ', '.join(str(i) for i in items if i not in (None, '', []))


def timestamp(value):
    """An AWS timestamp as 2026-11-28T09:30:00Z (UTC, whole seconds); other text unchanged."""
    import datetime
    from dateutil.parser import parse
    if isinstance(value, datetime.datetime):
        when = value
    else:
        try:
            when = parse(str(value))
        except (ValueError, OverflowError):
            return str(value)
    if when.tzinfo is None:
        return when.strftime('%Y-%m-%dT%H:%M:%S')
    return when.astimezone(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')


def _when(label, value):
    return f"{label} {timestamp(value)}" if value else None


def _world_open(rules):
    out = []
    for p in rules or ():
        proto = p.get('IpProtocol')
        ports = 'all ports' if proto == '-1' else (
            f"{proto} {p.get('FromPort')}" + (
                f"-{p.get('ToPort')}" if p.get('ToPort') != p.get('FromPort') else ''))
        cidrs = [c.get('CidrIp') for c in p.get('IpRanges') or ()] + [
            c.get('CidrIpv6') for c in p.get('Ipv6Ranges') or ()]
        cidrs = [c for c in cidrs if c in ('0.0.0.0/0', '::/0')]
        if cidrs:
            where = '/'.join(cidrs) if len(cidrs) == 1 else ' and '.join(cidrs)
            out.append(f'{ports} from {where}')
    return ('open to the world: ' + '; '.join(out)) if out else None


def _s3_facts(r):
    region = ((r.get('Location') or {}).get('LocationConstraint')) or 'us-east-1'
    versioning = (r.get('Versioning') or {}).get('Status', 'never enabled') \
        if 'Versioning' in r else None
    who = []
    for s in r.get('CrossAccountViolations') or ():
        principal = s.get('Principal')
        if isinstance(principal, dict):
            for v in principal.values():
                who.extend([v] if isinstance(v, str) else v)
        elif principal:
            who.append(principal)
    return _facts(region, versioning and f"versioning {versioning}",
                  who and 'bucket policy grants ' + ', '.join(sorted(set(who))))
def _iam_facts(r):
    facts = []
    if r.get('Path') and r['Path'] != '/':
        facts.append(f"path {r['Path']}")
    if r.get('CreateDate'):
        facts.append(f"created {timestamp(r['CreateDate'])}")
    return ', '.join(facts)


# One line of plain facts per resource type, shown before the annotations.
FACTS = {
    'aws.ec2': _ec2_facts,
    'aws.ami': lambda r: _facts(r.get('Name'), 'public' if r.get('Public') else None,
                                _when('created', r.get('CreationDate'))),
    'aws.asg': lambda r: _facts(
        f"desired {r.get('DesiredCapacity')} (min {r.get('MinSize')}, max {r.get('MaxSize')})",
        (r.get('LaunchTemplate') or {}).get('LaunchTemplateName') or
        r.get('LaunchConfigurationName'), _when('created', r.get('CreatedTime'))),
    'aws.ebs': lambda r: _facts(
        f"{r.get('Size')} GiB", r.get('State'),
        ', '.join(a.get('InstanceId', '') for a in r.get('Attachments') or ()),
        _when('created', r.get('CreateTime'))),
    'aws.ebs-snapshot': lambda r: _facts(
        r.get('VolumeId'), r.get('VolumeSize') and f"{r['VolumeSize']} GiB",
        _when('started', r.get('StartTime'))),
    'aws.ecs': lambda r: _facts(
        r.get('clusterName'), f"{r.get('activeServicesCount', 0)} services",
        f"{r.get('runningTasksCount', 0)} running tasks"),
    'aws.ecr': lambda r: _facts(r.get('repositoryUri'), _when('created', r.get('createdAt'))),
    'aws.lambda': lambda r: _facts(r.get('Runtime'), r.get('Role'),
                                   _when('last modified', r.get('LastModified'))),
    'aws.lambda-layer': lambda r: _facts(
        f"{r.get('LayerName')} version {r.get('Version')}",
        _when('created', r.get('CreatedDate'))),
    'aws.lightsail-instance': lambda r: _facts(
        r.get('bundleId'), r.get('blueprintId'), (r.get('state') or {}).get('name'),
        _when('created', r.get('createdAt'))),
    'aws.r53domain': lambda r: _facts(_when('registered', r.get('CreationDate')),
                                      _when('expires', r.get('ExpirationDate'))),
    'aws.sagemaker-notebook': lambda r: _facts(
        r.get('InstanceType'), r.get('NotebookInstanceStatus'),
        _when('created', r.get('CreationTime'))),
    'aws.key-pair': lambda r: _facts(r.get('KeyName'), r.get('KeyType'),
                                     _when('created', r.get('CreateTime'))),
    'aws.security-group': lambda r: _facts(
        r.get('GroupName'), r.get('VpcId'), _world_open(r.get('MatchedIpPermissions'))),
    'aws.s3': _s3_facts,
    'aws.rds': lambda r: _facts(
        r.get('Engine'), r.get('DBInstanceClass'),
        f"backup retention {r.get('BackupRetentionPeriod')} days"),
    'aws.rds-snapshot': lambda r: _facts(
        r.get('DBInstanceIdentifier'), _when('created', r.get('SnapshotCreateTime'))),
    'aws.rds-cluster-snapshot': lambda r: _facts(
        r.get('DBClusterIdentifier'), _when('created', r.get('SnapshotCreateTime'))),
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
        elif cloudtrail.events(v):
            out.extend(cloudtrail.events_lines(cloudtrail.events(v), limit))
            continue
        else:
            text = f"{k[4:]}: {v if isinstance(v, str) else json.dumps(v, default=str)}"
        if text:
            out.append(text if len(text) <= limit else text[:limit - 1] + '…')
    return out
