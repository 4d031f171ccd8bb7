"""The report document: every format is rendered from it, and ``--format json`` is it.

Its shape is a stable, versioned contract, described field by field in
``docs/report-schema.json`` (JSON Schema) and checked against it in the tests.
Adding a field is a minor version; renaming or removing one is a major version.

Order: findings by runbook step (``../shared/RUNBOOK.md``), then severity,
policy, account, region and resource id. Detect policies produce findings;
respond policies (policies with actions) produce what was contained: the
per-resource ``action-results-*.json`` the pack's actions write, or, for a
``--dryrun`` run, what would be. Each finding lists the containment of its
own resource.

The gate (``--fail-on``): exit 2 when any policy errored, did not run or
checked only in part (findings marked ``c7n:incomplete``), else 1 when a
finding is at or above the gate severity, else 0. A partial check
(``partial.json``: it ran but could not read everything, e.g. history older
than CloudTrail's 90 days) keeps its status, is listed under "Partial checks"
with what it could not check, and the gate's message counts it.
"""
import datetime
from collections import Counter

from custodian_ext.report import activity, arns, cloudtrail, summary as summaries
from custodian_ext.report.loader import resource_id
from custodian_ext.report.model import SEVERITIES, STEPS, severity_rank, step_key
from custodian_ext.report.reasons import reasons

SCHEMA_VERSION = '1.2'
SCHEMA_ID = 'https://github.com/custodian-ext/custodian-ext/docs/report-schema.json'

EXIT_OK, EXIT_FINDINGS, EXIT_ERRORED = 0, 1, 2

# What the pack cannot do: the responder's own checklist, at the end of every report.
MANUAL_STEPS = (
    ('X10', 'Answer the AWS Support case',
     "Reply to AWS's notice in the Support Center, confirming what you did: keys "
     "rotated, unauthorized resources deleted, root credentials changed."),
    ('X2', 'Delete root access keys as the root user',
     'Only the root user (or centralized root access from the management account) '
     'can delete them. Check their last use in CloudTrail first.'),
    ('R3.1', 'Review the cost report',
     'Compare this month with last month by service and by region in Cost Explorer or '
     'the Cost and Usage Report, and ask AWS Support about charges from the incident.'),
)


class Gate:
    """``--fail-on``: the lowest severity that fails the run, or None for no gate."""

    def __init__(self, fail_on=None):
        fail_on = fail_on.lower() if isinstance(fail_on, str) else fail_on
        if fail_on is not None and fail_on not in SEVERITIES:
            from custodian_ext.report.loader import ReportInputError
            raise ReportInputError(
                f"--fail-on: unknown severity {fail_on!r}; choose from {', '.join(SEVERITIES)}")
        self.fail_on = fail_on

    def fails(self, severity):
        return self.fail_on is not None and severity_rank(severity) <= severity_rank(self.fail_on)


def iso(dt):
    return dt.astimezone(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')


def _created(resource):
    """The resource's creation time, as an aware datetime, from c7n's describe output."""
    for k in ('CreateDate', 'CreationDate', 'CreatedDate', 'CreateTime', 'CreationTime',
              'CreatedTime', 'LaunchTime', 'StartTime', 'CreatedAt'):
        v = resource.get(k)
        if isinstance(v, str) and v:
            try:
                v = datetime.datetime.fromisoformat(v.replace('Z', '+00:00'))
            except ValueError:
                continue
        elif isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0:
            v = datetime.datetime.fromtimestamp(v / 1000 if v > 1e11 else v, datetime.timezone.utc)
        if isinstance(v, datetime.datetime):
            return v if v.tzinfo else v.replace(tzinfo=datetime.timezone.utc)
    return None


def age_text(seconds):
    """A short age: '40 min', '5 h', '12 d'."""
    if seconds < 3600:
        return f"{max(int(seconds // 60), 0)} min"
    if seconds < 2 * 86400:
        return f"{int(seconds // 3600)} h"
    return f"{int(seconds // 86400)} d"


def _run_doc(run):
    return {
        'policy': run.policy,
        'kind': run.kind,
        'step': run.step,
        'severity': _severity(run) if run.kind == 'detect' else None,
        'resource_type': run.resource_type,
        'account': run.account,
        'account_id': run.account_id,
        'region': run.region,
        'status': run.status,
        'resources': len(run.resources),
        'dryrun': run.dryrun,
        'duration': round(run.duration, 3),
        'error': run.error or None,
        'partial': list(run.partial),
        'path': run.path,
    }


def _contained(run):
    """What one respond run did (or, in --dryrun, would do) to each of its resources.

    The pack's actions record each resource (action-results-*.json). Stock c7n
    actions record nothing: when the run finished, they ran on every resource.
    """
    out = []
    recorded = {}
    for res in run.action_results:
        recorded.setdefault(str(res.get('resource_id')), []).append(res)

    def entry(rid, action, status, reason, when=None):
        return {'policy': run.policy, 'account': run.account, 'account_id': run.account_id,
                'region': run.region, 'resource_type': run.resource_type, 'resource_id': rid,
                'action': str(action), 'status': str(status), 'reason': reason or None,
                'time': when}

    for r in run.resources:
        rid = resource_id(run.resource_type, r)
        if run.dryrun:
            out.extend(entry(rid, a, 'planned', 'dry run: nothing was changed')
                       for a in run.changing_actions)
            continue
        done = recorded.pop(rid, [])
        out.extend(entry(rid, res.get('action') or '?', res.get('status') or '?',
                         str(res.get('reason') or ''), res.get('time')) for res in done)
        for a in run.changing_actions:
            if any(res.get('action') == a for res in done):
                continue
            if run.status == 'errored':
                out.append(entry(rid, a, 'unknown',
                                 'the policy errored before recording it; check by hand'))
            else:
                out.append(entry(rid, a, 'done', 'the policy ran its actions without error'))
    for rid, results in recorded.items():  # recorded for resources not in resources.json
        out.extend(entry(rid, res.get('action') or '?', res.get('status') or '?',
                         str(res.get('reason') or ''), res.get('time')) for res in results)
    return out


def _severity(run):
    # A policy without a known severity is shown as info, never dropped.
    return run.severity if run.severity in SEVERITIES else 'info'


def _finding_doc(run, resource, now, contained):
    rid = resource_id(run.resource_type, resource)
    created = _created(resource)
    try:
        who = cloudtrail.created_by(resource)
    except (AttributeError, KeyError, IndexError, TypeError, ValueError):
        who = None  # annotations of a shape the pack does not write
    why = reasons(resource, resource_type=run.resource_type)
    mine = [c for c in contained
            if (c['account'], c['resource_type'], c['resource_id'])
            == (run.account, run.resource_type, rid)]
    return {
        'id': f"{run.policy}/{run.account}/{run.region}/{rid}",
        'step': run.step,
        'step_title': STEPS.get(run.step, ''),
        'severity': _severity(run),
        'policy': run.policy,
        'description': run.description.strip(),
        'resource_type': run.resource_type,
        'account': run.account,
        'account_id': run.account_id,
        'region': run.region,
        'resource_id': rid,
        'arn': arns.resource_arn(run.resource_type, resource, rid, run.account_id, run.region),
        'why': why,
        'created': iso(created) if created else None,
        'age': age_text((now - created).total_seconds()) if created else None,
        'created_by': who,
        'remediation': str(run.metadata.get('remediation') or '').strip() or None,
        'respond_policy': run.metadata.get('respond') or None,
        'attack': run.metadata.get('attack') or None,
        'contained': [{k: c[k] for k in ('policy', 'action', 'status', 'reason', 'time')}
                      for c in mine],
    }


def _run_key(r):
    return (step_key(r.step), r.policy, r.account, r.region)


def build(runs, fail_on=None, sources=(), now=None, triage=None):
    """The report document for ``runs`` (from ``loader.load_runs``).

    ``triage`` (``triage.Triage``): findings it accepts move to ``accepted``
    and do not count for the gate; errored and missing runs are untouched.
    """
    gate = Gate(fail_on)
    now = now or datetime.datetime.now(datetime.timezone.utc)
    runs = sorted(runs, key=_run_key)
    detect = [r for r in runs if r.kind == 'detect']
    respond = [r for r in runs if r.kind == 'respond']

    contained = []
    for r in respond:
        contained.extend(_contained(r))
    contained.sort(key=lambda c: (c['account'], c['region'], c['resource_id'], c['policy'],
                                  c['action']))

    findings = []
    for r in detect:
        if r.status == 'findings':
            findings.extend(_finding_doc(r, res, now, contained) for res in r.resources)
    findings.sort(key=lambda f: (step_key(f['step']), severity_rank(f['severity']), f['policy'],
                                 f['account'], f['region'], f['resource_id']))
    accepted, triage_doc = [], None
    if triage is not None:
        findings, accepted, triage_doc = triage.apply(findings, now)

    by_severity = Counter(f['severity'] for f in findings)
    steps = {}
    for f in findings:
        steps.setdefault(f['step'], Counter())[f['severity']] += 1
    problems = [r for r in runs if r.status in ('errored', 'missing') or r.incomplete]
    partial = [r for r in runs if r.partial and r.status in ('findings', 'clean')]
    status_counts = Counter(r.status for r in runs)
    at_gate = [f for f in findings if gate.fails(f['severity'])]

    if problems:
        code = EXIT_ERRORED
        message = (f"{len(problems)} policy run(s) errored or did not run: their results "
                   f"are unknown")
        incomplete = sum(1 for r in problems if r.incomplete)
        if incomplete:
            message = (f"{len(problems)} policy run(s) errored, did not run or checked only in "
                       f"part ({incomplete}): their results are unknown or incomplete")
    elif at_gate:
        code = EXIT_FINDINGS
        message = f"{len(at_gate)} finding(s) at or above {gate.fail_on}"
    elif gate.fail_on and accepted:
        code = EXIT_OK
        message = (f"no open findings at or above {gate.fail_on} ({len(accepted)} accepted "
                   f"in the triage file)")
    elif gate.fail_on:
        code = EXIT_OK
        message = f"no findings at or above {gate.fail_on}"
    else:
        code = EXIT_OK
        message = 'no gate (--fail-on not given)'
    if partial and not problems:
        message += (f"; {len(partial)} check(s) partial: part of what they check could not "
                    f"be read (see 'Partial checks')")

    accounts = {}
    for r in runs:
        accounts.setdefault(r.account, r.account_id)
    with_findings = {f['account'] for f in findings}
    root_key_accounts = sorted({f['account'] for f in findings if f['step'] == 'X2'})
    manual = []
    for step, title, detail in MANUAL_STEPS:
        item = {'step': step, 'title': title, 'detail': detail, 'accounts': []}
        if step == 'X2':
            item['accounts'] = root_key_accounts
        elif step == 'X10':
            item['accounts'] = sorted(with_findings)
        manual.append(item)

    return {
        'schema_version': SCHEMA_VERSION,
        'generated_at': iso(now),
        'sources': list(sources),
        'gate': {
            'fail_on': gate.fail_on,
            'exit_code': code,
            'status': {EXIT_OK: 'pass', EXIT_FINDINGS: 'fail', EXIT_ERRORED: 'error'}[code],
            'message': message,
            'findings_at_or_above': len(at_gate),
        },
        'summary': {
            'accounts': [{'name': n, 'account_id': accounts[n]} for n in sorted(accounts)],
            'regions': sorted({r.region for r in runs if r.region}),
            'findings': len(findings),
            'by_severity': {s: by_severity.get(s, 0) for s in SEVERITIES},
            'by_step': [
                {'step': s, 'title': STEPS.get(s, ''), 'total': sum(c.values()),
                 'by_severity': {sev: c.get(sev, 0) for sev in SEVERITIES}}
                for s, c in sorted(steps.items(), key=lambda kv: step_key(kv[0]))],
            'runs': {
                'total': len(runs),
                'detect': len(detect),
                'respond': len(respond),
                **{s: status_counts.get(s, 0)
                   for s in ('findings', 'clean', 'errored', 'skipped', 'missing')},
                'partial': len(partial)},
            'contained': dict(sorted(Counter(c['status'] for c in contained).items())),
            'accepted': len(accepted),
            'by_account': summaries.by_account(findings, accounts),
        },
        'priorities': summaries.priorities(findings),
        'findings': findings,
        'accepted': accepted,
        'triage': triage_doc,
        'problems': [_run_doc(r) for r in problems],
        'partial': [_run_doc(r) for r in partial],
        'contained': contained,
        'activity': activity.build(runs, findings, contained),
        'runs': [_run_doc(r) for r in runs],
        'manual_steps': manual,
    }
