"""Activity review in the report: the attack timeline and the blast radius.

The activity policies (R2.2, issue #14) annotate an ``aws.account-region`` resource with
``c7n:activity`` (the CloudTrail events of suspect credentials, each classified by the
catalogue and tied to its ``Suspect.Credential`` with the chain ``Via``) and
``c7n:activity-coverage`` (which sources, window and regions were read, and what was not).
This module reads them from the runs and builds the document's ``activity`` section:

- ``suspects``: one entry per suspect credential and account, in the order the attacker
  started, each with its **timeline** (its events in time order, deduplicated across
  regions, runs and the two CloudTrail sources) and its **blast radius**: what it did
  (counts by tactic and by event), what it created or changed (each finding about a
  resource linked to the events that created or changed it, matched on the resource's id,
  ARN and names against the events' resources), and what was contained (respond results in
  the document for the credential, its principal or those resources);
- ``coverage``: what each account-region sweep read, so a short window or unrecorded data
  events are never mistaken for a quiet attacker;
- ``summary``: counts for the headline.

``timeline_svg`` lays the timeline out for the HTML report (inline SVG, no script).
"""
import datetime
import json
from collections import Counter

from custodian_ext.activity.catalogue import TACTICS
from custodian_ext.report import reasons
from custodian_ext.report.loader import resource_id
from custodian_ext.report.model import SEVERITIES, severity_rank

ANNOTATION = 'c7n:activity'
COVERAGE = 'c7n:activity-coverage'
UNCLASSIFIED = 'unclassified'
TACTIC_ORDER = list(TACTICS) + [UNCLASSIFIED]

# Events that only read: they never "create or change" a resource.
READ_PREFIXES = ('Describe', 'List', 'Get', 'Head', 'Lookup', 'Search', 'BatchGet', 'Check',
                 'Validate', 'Preview', 'Simulate', 'Estimate', 'Test', 'View', 'Decode',
                 'Scan', 'Query', 'Select', 'Filter')
CREATE_PREFIXES = ('Create', 'Run', 'Import', 'Register', 'Copy', 'Allocate', 'Request',
                   'Upload', 'Publish', 'Put', 'Start', 'Launch', 'Issue', 'Generate')
# Keys of a resource (c7n's describe output) that name it.
ID_KEYS = ('Arn', 'ARN', 'arn', 'Name', 'UserName', 'RoleName', 'GroupName', 'PolicyName',
           'InstanceId', 'ImageId', 'SnapshotId', 'VolumeId', 'GroupId', 'KeyName', 'KeyPairId',
           'FunctionName', 'FunctionArn', 'DBInstanceIdentifier', 'DBSnapshotIdentifier',
           'DBClusterIdentifier', 'TrailARN', 'TopicArn', 'QueueUrl', 'SecretId', 'AccessKeyId',
           'PolicyArn', 'FlowLogId', 'VpcId', 'TrustAnchorId', 'TrustAnchorArn', 'Id', 'id')

# One colour per tactic (ATT&CK order), readable on white, for the HTML timeline.
TACTIC_COLOURS = {
    'reconnaissance': '#8c8c8c', 'resource-development': '#6e7781',
    'initial-access': '#1f6feb', 'execution': '#8250df', 'persistence': '#bf3989',
    'privilege-escalation': '#cf222e', 'defense-evasion': '#9a6700',
    'credential-access': '#e16f24', 'discovery': '#0969da', 'lateral-movement': '#1a7f37',
    'collection': '#116329', 'command-and-control': '#57606a', 'exfiltration': '#a40e26',
    'impact': '#5a1e02', UNCLASSIFIED: '#afb8c1'}


def _parse_time(value):
    try:
        dt = datetime.datetime.fromisoformat(str(value).replace('Z', '+00:00'))
    except (TypeError, ValueError):
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=datetime.timezone.utc)


def _iso(value):
    dt = _parse_time(value)
    if dt is None:
        return str(value or '')
    return dt.astimezone(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')


def _str(value):
    return '' if value is None else str(value)


def _title(catalogue_id):
    if not catalogue_id:
        return None
    try:
        from custodian_ext.activity import catalogue
        return catalogue.load().entry(catalogue_id).classification.title
    except (KeyError, Exception):  # a catalogue id of another version: no title
        return None


def _event_doc(ev):
    suspect = ev.get('Suspect') if isinstance(ev.get('Suspect'), dict) else {}
    tactic = ev.get('Tactic') or UNCLASSIFIED
    via = [str(v) for v in suspect.get('Via') or () if v]
    resources = []
    for r in ev.get('Resources') or ():
        if isinstance(r, dict):
            name = r.get('Name') or r.get('ResourceName') or r.get('ARN')
            if name:
                resources.append({'type': _str(r.get('Type') or r.get('ResourceType')),
                                  'name': str(name)})
    source = ev.get('Source')
    return {
        'id': _str(ev.get('EventId')),
        'time': _iso(ev.get('EventTime')),
        'event': _str(ev.get('EventName')),
        'source': _str(ev.get('EventSource')),
        'region': _str(ev.get('Region')),
        'principal': _str(ev.get('Principal')),
        'principal_type': _str(ev.get('PrincipalType')),
        'access_key_id': _str(ev.get('AccessKeyId')),
        'via': via,
        'source_ip': _str(ev.get('SourceIPAddress')),
        'user_agent': _str(ev.get('UserAgent')),
        'error_code': ev.get('ErrorCode') or None,
        'resources': resources,
        'tactic': tactic,
        'tactic_id': ev.get('TacticId') or None,
        'technique': ev.get('Technique') or None,
        'severity': ev.get('Severity') if ev.get('Severity') in SEVERITIES else None,
        'catalogue_id': ev.get('CatalogueId') or None,
        'title': ev.get('Title') or _title(ev.get('CatalogueId')),
        'sources': [source] if source else [],
        'findings': [],
        '_credential': _str(suspect.get('Credential')) or _str(ev.get('AccessKeyId'))
        or _str(ev.get('Principal')) or 'unknown',
        '_reason': _str(suspect.get('Reason')),
    }


def _order(ev):
    """Time order; within one second (CloudTrail's resolution) creations first, then by name."""
    return (ev['time'], 0 if ev['event'].startswith(CREATE_PREFIXES) else 1, ev['event'],
            ev['id'])


def _is_write(ev):
    return not ev['event'].startswith(READ_PREFIXES) and ev['source'] != 'sts.amazonaws.com'


def _short(value):
    """The last segment of an ARN or path (user/bob -> bob; arn:...:snapshot/snap-1 -> snap-1)."""
    text = str(value)
    for sep in ('/', ':'):
        text = text.rsplit(sep, 1)[-1]
    return text


def _identifiers(run, resource):
    ids = {resource_id(run.resource_type, resource)}
    for k in ID_KEYS:
        v = resource.get(k)
        if isinstance(v, (str, int)) and not isinstance(v, bool) and str(v):
            ids.add(str(v))
    ids |= {_short(i) for i in ids if i.startswith('arn:')}
    return {i for i in ids if i and i != '?'}


def _principal_names(arn):
    """The names a principal ARN gives respond results: user bob -> bob; role R -> R."""
    if ':assumed-role/' in arn:
        return {arn.split(':assumed-role/', 1)[1].split('/')[0]}
    if ':user/' in arn or ':role/' in arn:
        return {arn.rsplit('/', 1)[-1]}
    return set()


def build(runs, findings, contained):
    """The ``activity`` section of the report document.

    ``runs``: every PolicyRun; ``findings`` and ``contained``: the document's lists (the
    findings' ``id`` is ``policy/account/region/resource id``).
    """
    events, coverage = {}, []
    finding_resources = []
    for run in runs:
        for res in run.resources if run.status == 'findings' else ():
            if not isinstance(res, dict):
                continue
            cov = res.get(COVERAGE)
            if isinstance(cov, dict):
                coverage.append(_coverage_doc(run, cov))
            acts = res.get(ANNOTATION)
            if isinstance(acts, list):
                for raw in acts:
                    if isinstance(raw, dict):
                        _add_event(events, run, raw)
            elif run.kind == 'detect':
                fid = f"{run.policy}/{run.account}/{run.region}/" \
                      f"{resource_id(run.resource_type, res)}"
                finding_resources.append((fid, run, res))

    suspects = {}
    for (account, credential), evs in _by_credential(events).items():
        suspects[(account, credential)] = _suspect(account, credential, evs)

    by_id = {f['id']: f for f in findings}
    _link_findings(suspects, finding_resources, by_id)
    _link_contained(suspects, runs, contained)

    # Lanes: each first suspect, then the session keys and roles it led to (its chain).
    starts = {}
    for s in suspects.values():
        root = (s['account'], s['via'][0])
        starts[root] = min(starts.get(root, s['first_seen'] or ''), s['first_seen'] or '')
    ordered = sorted(suspects.values(), key=lambda s: (
        starts[(s['account'], s['via'][0])], s['account'], s['via'][0], len(s['via']),
        s['first_seen'] or '', s['credential']))
    for s in ordered:
        for ev in s['timeline']:
            ev.pop('_credential', None)
            ev.pop('_reason', None)
            ev.pop('_account', None)
    by_tactic = Counter()
    for s in ordered:
        by_tactic.update(s['by_tactic'])
    coverage.sort(key=lambda c: (c['account'], c['region']))
    return {
        'summary': {
            'suspects': len(ordered),
            'events': sum(s['events'] for s in ordered),
            'failed': sum(s['failed'] for s in ordered),
            'accounts': sorted({s['account'] for s in ordered}),
            'by_tactic': {t: by_tactic[t] for t in TACTIC_ORDER if by_tactic.get(t)},
            'severity': min((s['severity'] for s in ordered if s['severity']),
                            key=severity_rank, default=None),
            'linked_findings': sum(len(s['created']) for s in ordered),
            'not_recorded': sorted({f"{c['account']}/{c['region']}" for c in coverage
                                    if c['data_events'] != 'recorded'}),
        },
        'suspects': ordered,
        'coverage': coverage,
    }


def _add_event(events, run, raw):
    ev = _event_doc(raw)
    ev['_account'] = (run.account, run.account_id)
    key = (run.account, ev['_credential'], ev['id'] or
           (ev['time'], ev['event'], ev['access_key_id'], ev['region']))
    seen = events.get(key)
    if seen is None:
        events[key] = ev
        return
    # the same event from both sources, or from two runs
    seen['sources'] = sorted(set(seen['sources']) | set(ev['sources']))
    for attr in ('tactic_id', 'technique', 'severity', 'catalogue_id', 'title', 'error_code'):
        seen[attr] = seen[attr] or ev[attr]
    if seen['tactic'] == UNCLASSIFIED:
        seen['tactic'] = ev['tactic']
    for r in ev['resources']:
        if r not in seen['resources']:
            seen['resources'].append(r)


def _by_credential(events):
    out = {}
    for (account, credential, _), ev in events.items():
        out.setdefault((account, credential), []).append(ev)
    return out


def _suspect(account, credential, evs):
    evs.sort(key=_order)
    account_id = evs[0]['_account'][1]
    by_event = {}
    for e in evs:
        row = by_event.setdefault((e['source'], e['event']), {
            'event': e['event'], 'source': e['source'], 'count': 0, 'failed': 0,
            'tactic': e['tactic'], 'technique': e['technique'], 'severity': e['severity']})
        row['count'] += 1
        row['failed'] += 1 if e['error_code'] else 0
        if severity_rank(e['severity']) < severity_rank(row['severity']):
            row['severity'], row['tactic'], row['technique'] = (
                e['severity'], e['tactic'], e['technique'])
    tactics = Counter(e['tactic'] for e in evs)
    ips = Counter(e['source_ip'] for e in evs if e['source_ip'])
    via = []
    for e in evs:
        for v in e['via']:
            if v not in via:
                via.append(v)
    reasons_seen = []
    for e in evs:
        if e['_reason'] and e['_reason'] not in reasons_seen:
            reasons_seen.append(e['_reason'])
    return {
        'credential': credential,
        'kind': ('session' if credential.startswith('ASIA') else
                 'key' if credential.startswith('AKIA') else 'principal'),
        'account': account,
        'account_id': account_id,
        'reason': '; '.join(reasons_seen) or None,
        'via': via or [credential],
        'principals': sorted({e['principal'] for e in evs if e['principal']}),
        'access_keys': sorted({e['access_key_id'] for e in evs if e['access_key_id']}),
        'source_ips': [{'ip': ip, 'events': n} for ip, n in
                       sorted(ips.items(), key=lambda kv: (-kv[1], kv[0]))],
        'regions': sorted({e['region'] for e in evs if e['region']}),
        'user_agents': sorted({e['user_agent'] for e in evs if e['user_agent']}),
        'first_seen': evs[0]['time'] or None,
        'last_seen': evs[-1]['time'] or None,
        'events': len(evs),
        'failed': sum(1 for e in evs if e['error_code']),
        'severity': min((e['severity'] for e in evs if e['severity']), key=severity_rank,
                        default=None),
        'by_tactic': {t: tactics[t] for t in TACTIC_ORDER if tactics.get(t)},
        'by_event': sorted(by_event.values(),
                           key=lambda r: (severity_rank(r['severity']), -r['count'],
                                          r['event'])),
        'created': [],
        'contained': [],
        'timeline': evs,
    }


def _link_findings(suspects, finding_resources, by_id):
    """Each finding about a resource -> the suspect events that created or changed it."""
    index = {}
    for s in suspects.values():
        for ev in s['timeline']:
            if not _is_write(ev):
                continue
            for r in ev['resources']:
                for name in {r['name'], _short(r['name'])}:
                    index.setdefault((s['account'], name), []).append((s, ev))
    for fid, run, res in finding_resources:
        f = by_id.get(fid)
        if f is None:
            continue
        hits = {}
        for ident in _identifiers(run, res):
            for s, ev in index.get((run.account, ident), ()):
                hits.setdefault(id(s), (s, {}))[1][ev['id'] or id(ev)] = ev
        for s, evs in hits.values():
            evs = sorted(evs.values(), key=_order)
            created = [e for e in evs if e['event'].startswith(CREATE_PREFIXES)]
            s['created'].append({
                'finding': fid, 'step': f['step'], 'severity': f['severity'],
                'policy': f['policy'], 'resource_type': f['resource_type'],
                'resource_id': f['resource_id'], 'region': f['region'],
                'how': 'created' if created else 'changed',
                'events': [{'id': e['id'], 'event': e['event'], 'time': e['time']}
                           for e in evs]})
            for e in evs:
                if fid not in e['findings']:
                    e['findings'].append(fid)
    for s in suspects.values():
        s['created'].sort(key=lambda c: (c['events'][0]['time'], c['finding']))


def _link_contained(suspects, runs, contained):
    """Respond results for the credential, its principals, or the resources it touched."""
    extra_keys = {}
    for run in runs:
        for res in run.action_results:
            try:
                blob = json.dumps(res, default=str)
            except (TypeError, ValueError):
                continue
            extra_keys.setdefault((run.policy, run.account, str(res.get('resource_id'))),
                                  []).append(blob)
    for s in suspects.values():
        # Its own keys only: deactivating the key that opened a session does not end it.
        keys = set(s['access_keys']) | {s['credential']}
        names = set(keys)
        for p in s['principals']:
            names |= _principal_names(p)
        names |= {c['resource_id'] for c in s['created']}
        for ev in s['timeline']:
            if _is_write(ev):
                names |= {r['name'] for r in ev['resources']}
                names |= {_short(r['name']) for r in ev['resources']}
        for c in contained:
            if c['account'] != s['account']:
                continue
            blobs = extra_keys.get((c['policy'], c['account'], c['resource_id']), ())
            why = None
            if c['resource_id'] in keys or any(k in b for b in blobs for k in keys):
                why = 'credential'
            elif c['resource_id'] in names:
                why = 'resource'
            if why:
                s['contained'].append({k: c[k] for k in (
                    'policy', 'region', 'resource_type', 'resource_id', 'action', 'status',
                    'reason', 'time')} | {'matched': why})


def _coverage_doc(run, cov):
    window = cov.get('Window') if isinstance(cov.get('Window'), dict) else {}
    data = cov.get('DataEvents')
    return {
        'account': run.account,
        'account_id': run.account_id,
        'region': run.region,
        'policy': run.policy,
        'sources': [str(s) for s in cov.get('Sources') or ()],
        'window': {'start': _iso(window.get('Start')) or None,
                   'end': _iso(window.get('End')) or None},
        'regions': [str(r) for r in cov.get('Regions') or ()],
        'data_events': data if data in ('recorded', 'not-recorded', 'unknown') else 'unknown',
        'cut_short': [str(c) for c in cov.get('CutShort') or ()],
        'notes': [str(n) for n in cov.get('Notes') or ()],
    }


# -- the HTML timeline ----------------------------------------------------------------

MAX_MARKS_PER_LANE = 2000


def event_text(ev, credential=None):
    """One line per event for hover text, Markdown, JUnit and the terminal."""
    what = ev['event'] + (f" ({', '.join(r['name'] for r in ev['resources'][:2])})"
                          if ev['resources'] else '')
    tactic = ev['tactic'] + (f" {ev['technique']}" if ev['technique'] else '')
    text = f"{ev['time']} {what} [{tactic}"
    text += f", {ev['severity']}]" if ev['severity'] else ']'
    if ev['error_code']:
        text += f" FAILED {ev['error_code']}"
    text += f" in {ev['region'] or '?'}"
    if ev['source_ip']:
        text += f" from {ev['source_ip']}"
    key = ev['access_key_id']
    if key and key != credential:
        text += f" with {key}"
    return text


def timeline_svg(activity, width=1000, lane_height=56, label_width=230):
    """Lanes (one per suspect credential) and marks for the inline SVG of the HTML report.

    x is time (one scale for every lane); marks sit on a row per tactic inside the lane, in
    the tactic's colour, hollow when the call failed. Returns None when there is nothing to
    draw.
    """
    suspects = activity['suspects']
    times = [_parse_time(ev['time']) for s in suspects for ev in s['timeline']]
    times = [t for t in times if t]
    if not times:
        return None
    start, end = min(times), max(times)
    span = max((end - start).total_seconds(), 1.0)
    plot = width - label_width - 20
    rows = len(TACTIC_ORDER)
    lanes = []
    for i, s in enumerate(suspects):
        top = 30 + i * lane_height
        marks, stacked = [], Counter()
        for ev in s['timeline'][:MAX_MARKS_PER_LANE]:
            t = _parse_time(ev['time'])
            if t is None:
                continue
            row = TACTIC_ORDER.index(ev['tactic']) if ev['tactic'] in TACTIC_ORDER else rows - 1
            x = label_width + (t - start).total_seconds() / span * plot
            # events of one tactic in the same second sit side by side, not on top
            nth = stacked[(round(x), row)]
            stacked[(round(x), row)] += 1
            marks.append({
                'x': round(min(x + nth * 5, label_width + plot + 8), 1),
                'y': round(top + 6 + row * (lane_height - 12) / (rows - 1), 1),
                'colour': TACTIC_COLOURS.get(ev['tactic'], TACTIC_COLOURS[UNCLASSIFIED]),
                'failed': bool(ev['error_code']),
                'big': ev['severity'] in ('critical', 'high'),
                'id': ev['id'],
                'title': event_text(ev, s['credential']) + (
                    f" by {ev['principal']}" if ev['principal'] else '') + (
                    f"; via {' > '.join(ev['via'])}" if len(ev['via']) > 1 else '') + (
                    f"; {ev['title']}" if ev['title'] else '')})
        lanes.append({'top': top, 'mid': top + lane_height / 2, 'height': lane_height, 'suspect': s,
                      'label': s['credential'], 'sublabel': s['account'], 'marks': marks,
                      'hidden': max(len(s['timeline']) - MAX_MARKS_PER_LANE, 0)})
    ticks = []
    for k in range(5):
        t = start + datetime.timedelta(seconds=span * k / 4)
        ticks.append({'x': round(label_width + plot * k / 4, 1),
                      'label': t.strftime('%Y-%m-%d %H:%M:%S') if k in (0, 4)
                      else t.strftime('%H:%M:%S')})
    used = []
    for s in suspects:
        for t in s['by_tactic']:
            if t not in used:
                used.append(t)
    legend = [{'tactic': t, 'colour': TACTIC_COLOURS.get(t, TACTIC_COLOURS[UNCLASSIFIED])}
              for t in TACTIC_ORDER if t in used]
    return {'width': width, 'height': 30 + len(lanes) * lane_height + 24,
            'label_width': label_width, 'plot_end': label_width + plot, 'lanes': lanes,
            'ticks': ticks, 'legend': legend, 'start': start.strftime('%Y-%m-%dT%H:%M:%SZ'),
            'end': end.strftime('%Y-%m-%dT%H:%M:%SZ')}


# -- why: readable forms of the annotations in the findings table ----------------------

def _why_activity(value, resource=None):
    if not isinstance(value, list):
        return ''
    creds = Counter()
    worst = None
    for ev in value:
        if not isinstance(ev, dict):
            continue
        suspect = ev.get('Suspect') if isinstance(ev.get('Suspect'), dict) else {}
        creds[suspect.get('Credential') or ev.get('AccessKeyId') or '?'] += 1
        sev = ev.get('Severity')
        if sev in SEVERITIES and (worst is None or severity_rank(sev) < severity_rank(worst)):
            worst = sev
    who = ', '.join(f"{c} ({n})" for c, n in creds.most_common(3))
    more = f" and {len(creds) - 3} more" if len(creds) > 3 else ''
    return (f"{len(value)} suspect event(s)" + (f", worst {worst}" if worst else '')
            + f": {who}{more} (attack timeline)")


def _why_coverage(value, resource=None):
    if not isinstance(value, dict):
        return ''
    parts = [f"read {', '.join(map(str, value.get('Sources') or ())) or 'nothing'}"]
    if value.get('DataEvents') and value.get('DataEvents') != 'recorded':
        parts.append(f"data events {str(value['DataEvents']).replace('-', ' ')}")
    if value.get('CutShort'):
        parts.append('cut short: ' + ', '.join(map(str, value['CutShort'])))
    window = value.get('Window') if isinstance(value.get('Window'), dict) else {}
    if window.get('Start'):
        parts.append(f"since {window.get('Start')}")
    return 'activity ' + ', '.join(parts)


reasons.register(ANNOTATION, _why_activity)
reasons.register(COVERAGE, _why_coverage)
