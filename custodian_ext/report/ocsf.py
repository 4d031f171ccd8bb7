"""The report's findings as OCSF Detection Finding events (``--format ocsf``).

Target: OCSF schema 1.5.0, class Detection Finding (``class_uid`` 2004,
category Findings, ``activity_id`` 1 Create), with the ``cloud`` profile.
``report.ocsf.json`` is a JSON array with one event per finding (open and
accepted), the form Prowler and Amazon Security Lake's OCSF tooling read.

Mapping (per finding of the report document):

=========================  ===============================================
severity                   ``severity_id`` (info 1, low 2, medium 3,
                           high 4, critical 5) and ``severity``
stable finding id          ``finding_info.uid`` (the Security Hub id: a
                           hash of policy, account id, region, resource id)
policy, description        ``finding_info.analytic`` (type Rule),
                           ``finding_info.title`` / ``desc``,
                           ``metadata.event_code``
why it was flagged         ``finding_info.desc`` (one line per reason)
ATT&CK technique           ``finding_info.attacks`` (one per tactic, with
                           technique / sub-technique and ATT&CK version)
runbook step               ``finding_info.types`` (``runbook:X1``),
                           ``metadata.labels``, ``unmapped.runbook_step``
account, region            ``cloud.account.uid`` (type AWS Account),
                           ``cloud.account.name``, ``cloud.region``
resource                   ``resources[]``: ``uid`` (ARN, else the id),
                           ``name`` (the id), ``type`` (c7n type),
                           ``region``, ``cloud_partition``
remediation, respond       ``remediation.desc``
status                     ``status_id`` New (1); Suppressed (3) for a
                           finding the triage file accepted, with the
                           entry's reason, owner and expiry in
                           ``status_detail`` and ``comment``
=========================  ===============================================

What OCSF 1.5.0 has no field for goes in ``unmapped``: the runbook step and
its title, the respond policy, what respond policies did (``contained``),
the CloudTrail event that created the resource, the triage entry.

Errored and missing policy runs are not findings, and are not events: an
event stream cannot say "this check did not run", and leaving them out
silently would read as clean. So next to ``report.ocsf.json`` the report
writes ``report.ocsf-status.json``: the gate (``exit_code`` 2 when a run
errored or did not run), and every errored or missing run. The command's
exit status says the same.
"""
import datetime
import hashlib
import json

from custodian_ext.report import attack

OCSF_VERSION = '1.5.0'
STATUS_SCHEMA_VERSION = '1.0'
CLASS_UID, CATEGORY_UID, ACTIVITY_CREATE = 2004, 2, 1
SEVERITY = {'info': (1, 'Informational'), 'low': (2, 'Low'), 'medium': (3, 'Medium'),
            'high': (4, 'High'), 'critical': (5, 'Critical')}
PRODUCT = 'custodian-ext'


def finding_uid(f):
    """Stable across runs: a hash of policy, account id, region and resource id.

    The same value is the Security Hub finding id (``custodian_ext.securityhub``).
    """
    key = '\n'.join((f['policy'], f['account_id'] or f['account'], f['region'],
                     f['resource_id']))
    return hashlib.sha256(key.encode()).hexdigest()[:40]


def _ms(iso_time):
    dt = datetime.datetime.fromisoformat(iso_time.replace('Z', '+00:00'))
    return int(dt.timestamp() * 1000)


def _version():
    from custodian_ext.periodic import version
    return version()


def attacks(technique_id):
    """``finding_info.attacks``: one entry per tactic of the technique."""
    t = attack.technique(technique_id)
    if t is None:
        return None
    out = []
    for tactic_id, tactic_name in t.tactics:
        item = {'tactic': {'uid': tactic_id, 'name': tactic_name}, 'version': t.version}
        if t.is_sub:
            item['technique'] = {'uid': t.parent_id, 'name': t.parent_name}
            item['sub_technique'] = {'uid': t.id, 'name': t.name}
        else:
            item['technique'] = {'uid': t.id, 'name': t.name}
        out.append(item)
    return out


def _remediation(f):
    parts = []
    if f['remediation']:
        parts.append(f['remediation'])
    if f['respond_policy']:
        parts.append(f"Respond policy: {f['respond_policy']} (policies/respond; run it with "
                     f"--dryrun first).")
    return ' '.join(parts) or None


def _title(f):
    return f"{f['policy']}: {f['resource_id']}"[:256]


def event(f, generated_at, version):
    """One Detection Finding event for one finding of the report document."""
    sev_id, sev = SEVERITY.get(f['severity'], (0, 'Unknown'))
    accepted = f.get('accepted')
    uid = finding_uid(f)
    desc = f['description']
    if f['why']:
        desc = (desc + '\n' if desc else '') + '\n'.join(f"- {w}" for w in f['why'])
    info = {
        'uid': uid,
        'title': _title(f),
        'desc': desc or f['policy'],
        'types': [f"runbook:{f['step']}"] if f['step'] else None,
        'analytic': {'uid': f['policy'], 'name': f['policy'], 'type_id': 1, 'type': 'Rule',
                     'category': f"runbook:{f['step']}" if f['step'] else None,
                     'desc': f['description'] or None},
        'attacks': attacks(f['attack']),
        'data_sources': ['Cloud Custodian policy run (custodian-ext report)'],
    }
    resource = {'uid': f['arn'] or f['resource_id'], 'name': f['resource_id'],
                'type': f['resource_type'], 'region': f['region'], 'cloud_partition': 'aws'}
    if f['arn'] and f['arn'].startswith('arn:'):
        resource['cloud_partition'] = f['arn'].split(':')[1]
    if f['created']:
        resource['data'] = {'created': f['created']}
    event = {
        'activity_id': ACTIVITY_CREATE, 'activity_name': 'Create',
        'category_uid': CATEGORY_UID, 'category_name': 'Findings',
        'class_uid': CLASS_UID, 'class_name': 'Detection Finding',
        'type_uid': CLASS_UID * 100 + ACTIVITY_CREATE, 'type_name': 'Detection Finding: Create',
        'severity_id': sev_id, 'severity': sev,
        'status_id': 3 if accepted else 1, 'status': 'Suppressed' if accepted else 'New',
        'time': _ms(generated_at),
        'message': f"{f['description'].splitlines()[0] if f['description'] else f['policy']}"
                   f" ({f['resource_id']} in {f['account']}/{f['region']})",
        'metadata': {
            'version': OCSF_VERSION,
            'product': {'name': PRODUCT, 'vendor_name': PRODUCT, 'version': version,
                        'feature': {'name': f['policy']}},
            'profiles': ['cloud'],
            'event_code': f['policy'],
            'uid': f"{uid}-{_ms(generated_at)}",
            'labels': [x for x in (f"runbook:{f['step']}" if f['step'] else None,
                                   f"severity:{f['severity']}") if x],
        },
        'finding_info': {k: v for k, v in info.items() if v is not None},
        'cloud': {'provider': 'AWS', 'region': f['region'],
                  'account': {'uid': f['account_id'] or f['account'], 'name': f['account'],
                              'type_id': 10, 'type': 'AWS Account'}},
        'resources': [resource],
    }
    event['finding_info']['analytic'] = {
        k: v for k, v in info['analytic'].items() if v is not None}
    remediation = _remediation(f)
    if remediation:
        event['remediation'] = {'desc': remediation}
    if accepted:
        event['status_detail'] = (f"accepted in {accepted['file']} (entry {accepted['entry']}) "
                                  f"by {accepted['owner']} until {accepted['expires']}")
        event['comment'] = accepted['reason']
    unmapped = {'runbook_step': f['step'], 'runbook_title': f['step_title'],
                'respond_policy': f['respond_policy'], 'contained': f['contained'],
                'created_by': f['created_by'], 'age': f['age'],
                'report_finding_id': f['id']}
    if accepted:
        unmapped['accepted'] = accepted
    event['unmapped'] = {k: v for k, v in unmapped.items() if v not in (None, [], '')}
    return event


def events(doc):
    """Every finding of the report document (open, then accepted) as an OCSF event."""
    version = _version()
    return [event(f, doc['generated_at'], version)
            for f in list(doc['findings']) + list(doc.get('accepted') or ())]


def render(doc):
    return json.dumps(events(doc), indent=2) + '\n'


def status(doc):
    """``report.ocsf-status.json``: what the events leave out (errored and missing runs)."""
    return {
        'schema_version': STATUS_SCHEMA_VERSION,
        'ocsf_version': OCSF_VERSION,
        'generated_at': doc['generated_at'],
        'events': len(doc['findings']) + len(doc.get('accepted') or ()),
        'accepted': len(doc.get('accepted') or ()),
        'gate': doc['gate'],
        'problems': doc['problems'],
        'note': ('errored and missing policy runs are not findings and are not in '
                 'report.ocsf.json; their results are unknown, never clean'),
    }


def render_status(doc):
    return json.dumps(status(doc), indent=2) + '\n'
