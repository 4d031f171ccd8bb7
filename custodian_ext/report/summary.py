"""What a person looks at first: the findings to act on now, and the sweep per account.

- ``priorities``: the critical and high findings, one entry per policy (the
  order of ``SEVERITIES``, then runbook step), with the respond policy that
  contains them, the manual remediation, where they are and what respond
  runs already did. The report puts it before everything else.
- ``by_account``: findings per account, severity and runbook step, for the
  chart of an organization sweep (every swept account, clean ones with 0).
"""
from collections import Counter

from custodian_ext.report.model import SEVERITIES, severity_rank, step_key

FIRST = ('critical', 'high')
# Resources listed per priority; the findings table has them all.
PRIORITY_RESOURCES = 10


def priorities(findings):
    """The critical and high findings, grouped by policy, most urgent first."""
    groups = {}
    for f in findings:
        if f['severity'] not in FIRST:
            continue
        g = groups.get(f['policy'])
        if g is None:
            g = groups[f['policy']] = {
                'severity': f['severity'], 'step': f['step'], 'step_title': f['step_title'],
                'policy': f['policy'], 'description': f['description'],
                'respond_policy': f['respond_policy'], 'remediation': f['remediation'],
                'attack': f['attack'], 'findings': 0, 'accounts': [], 'regions': [],
                'resources': [], 'contained': Counter(), 'uncontained': 0}
        g['findings'] += 1
        if f['account'] not in g['accounts']:
            g['accounts'].append(f['account'])
        if f['region'] not in g['regions']:
            g['regions'].append(f['region'])
        if len(g['resources']) < PRIORITY_RESOURCES:
            g['resources'].append({'account': f['account'], 'region': f['region'],
                                   'resource_id': f['resource_id']})
        statuses = {c['status'] for c in f['contained']}
        for s in statuses:
            g['contained'][s] += 1
        if 'done' not in statuses:
            g['uncontained'] += 1
    out = sorted(groups.values(), key=lambda g: (severity_rank(g['severity']),
                                                 step_key(g['step']), g['policy']))
    for g in out:
        g['accounts'].sort()
        g['regions'].sort()
        g['contained'] = dict(sorted(g['contained'].items()))
    return out


def by_account(findings, accounts):
    """Findings per account (``accounts``: {name: id} of every swept account)."""
    rows = {name: {'account': name, 'account_id': accounts.get(name) or '', 'total': 0,
                   'by_severity': {s: 0 for s in SEVERITIES}, 'by_step': Counter()}
            for name in accounts}
    for f in findings:
        row = rows.setdefault(f['account'], {
            'account': f['account'], 'account_id': f['account_id'], 'total': 0,
            'by_severity': {s: 0 for s in SEVERITIES}, 'by_step': Counter()})
        row['total'] += 1
        row['by_severity'][f['severity']] += 1
        row['by_step'][f['step'] or 'unknown'] += 1
    out = []
    for name in sorted(rows):
        row = rows[name]
        row['by_step'] = {s: row['by_step'][s] for s in sorted(row['by_step'], key=step_key)}
        out.append(row)
    return out
