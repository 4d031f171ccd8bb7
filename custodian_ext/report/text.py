"""A plain-text summary for the terminal, ordered by runbook step then severity."""
from collections import Counter, defaultdict

from custodian_ext.report.loader import findings as all_findings
from custodian_ext.report.model import STEPS, SEVERITIES, severity_rank, step_key
from custodian_ext.report.reasons import reasons


def render_text(runs, width=100):
    found = all_findings(runs)
    errored = [r for r in runs if r.status == 'errored']
    by_step = defaultdict(list)
    for f in found:
        by_step[f.step].append(f)
    counts = Counter(f.severity for f in found)
    lines = []
    accounts = sorted({r.account for r in runs})
    regions = sorted({r.region for r in runs if r.status != 'skipped'})
    lines.append(f"Swept {len(accounts)} account(s) in {len(regions)} region(s): "
                 f"{len(found)} finding(s) "
                 + ('(' + ', '.join(f"{counts[s]} {s}" for s in SEVERITIES if counts[s]) + ')'
                    if found else ''))
    for step in sorted(by_step, key=step_key):
        items = sorted(by_step[step], key=lambda f: (severity_rank(f.severity), f.run.policy,
                                                      f.run.account, f.run.region, f.resource_id))
        lines.append('')
        lines.append(f"{step}  {STEPS.get(step, '')}")
        for f in items:
            lines.append(f"  [{f.severity.upper():8}] {f.run.policy}  {f.run.account}/{f.run.region}"
                         f"  {f.resource_id}")
            for why in reasons(f.resource, resource_type=f.run.resource_type):
                lines.append(f"      - {why}"[:width])
    lines.append('')
    if errored:
        lines.append(f"ERRORED policy runs ({len(errored)}): these are NOT clean, their results are unknown")
        for r in sorted(errored, key=lambda r: (r.account, r.region, r.policy)):
            lines.append(f"  {r.policy}  {r.account}/{r.region}: {r.error}"[:width * 2])
    else:
        lines.append('Errored policy runs: none')
    return '\n'.join(lines) + '\n'
