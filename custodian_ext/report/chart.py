"""The findings of an organization sweep per account and runbook step, as a chart.

``svg(doc)``: an inline SVG heat map (rows: accounts, columns: runbook steps,
each cell the number of open findings, darker for more, outlined in the
colour of its worst severity) with a bar of each account's total. It is
plain markup inside report.html (HTML needs no namespace for it): no script,
font or image is fetched, so the file works offline. ``text(doc)``: the same table for the terminal.

Shown for a sweep of more than one account.
"""
from xml.sax.saxutils import escape

from custodian_ext.report.model import SEVERITIES, severity_rank, step_key

SEVERITY_COLOURS = {'critical': '#a40e26', 'high': '#d1242f', 'medium': '#bf8700',
                    'low': '#0969da', 'info': '#6e7781'}
CELL_W, CELL_H, LABEL_W, HEAD_H, BAR_W = 46, 26, 170, 34, 160


def wanted(doc):
    return len(doc['summary'].get('by_account') or ()) > 1


def _steps(doc):
    steps = set()
    for row in doc['summary']['by_account']:
        steps.update(row['by_step'])
    return sorted(steps, key=step_key)


def _worst(doc):
    """{(account, step): worst severity} of the open findings."""
    out = {}
    for f in doc['findings']:
        key = (f['account'], f['step'] or 'unknown')
        if key not in out or severity_rank(f['severity']) < severity_rank(out[key]):
            out[key] = f['severity']
    return out


def _fill(n, top):
    if not n:
        return '#f6f8fa'
    # from a light to a dark blue-grey, by share of the largest cell
    share = n / top if top else 1
    light, dark = (221, 228, 238), (36, 52, 84)
    rgb = [round(a + (b - a) * (0.25 + 0.75 * share)) for a, b in zip(light, dark)]
    return '#%02x%02x%02x' % tuple(rgb)


def svg(doc):
    """The chart as an ``<svg>`` element (a string), or '' when it is not wanted."""
    if not wanted(doc):
        return ''
    rows = doc['summary']['by_account']
    steps = _steps(doc)
    worst = _worst(doc)
    top = max([n for r in rows for n in r['by_step'].values()] or [1])
    most = max([r['total'] for r in rows] or [1]) or 1
    width = LABEL_W + CELL_W * max(len(steps), 1) + 20 + BAR_W + 40
    height = HEAD_H + CELL_H * len(rows) + 30
    parts = [
        f'<svg id="account-step-chart" role="img" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'font-family="system-ui, sans-serif" font-size="12">',
        '<title>Open findings per account and runbook step</title>']
    for j, step in enumerate(steps):
        x = LABEL_W + j * CELL_W + CELL_W / 2
        parts.append(f'<text x="{x:.0f}" y="{HEAD_H - 10}" text-anchor="middle" '
                     f'font-weight="bold">{escape(step)}</text>')
    bar_x = LABEL_W + CELL_W * max(len(steps), 1) + 20
    parts.append(f'<text x="{bar_x}" y="{HEAD_H - 10}" font-weight="bold">total</text>')
    for i, row in enumerate(rows):
        y = HEAD_H + i * CELL_H
        label = row['account'] if len(row['account']) <= 24 else row['account'][:23] + '…'
        parts.append(f'<text x="{LABEL_W - 8}" y="{y + CELL_H / 2 + 4:.0f}" text-anchor="end">'
                     f'{escape(label)}</text>')
        for j, step in enumerate(steps):
            n = row['by_step'].get(step, 0)
            x = LABEL_W + j * CELL_W
            sev = worst.get((row['account'], step))
            stroke = SEVERITY_COLOURS.get(sev, '#d0d7de')
            width_px = 2.5 if sev in ('critical', 'high') else 1
            title = (f"{row['account']} {step}: {n} open finding(s)"
                     + (f", worst {sev}" if sev else ''))
            parts.append(
                f'<g class="cell" data-account="{escape(row["account"])}" '
                f'data-step="{escape(step)}" data-count="{n}"><title>{escape(title)}</title>'
                f'<rect x="{x + 1}" y="{y + 1}" width="{CELL_W - 2}" height="{CELL_H - 2}" '
                f'rx="3" fill="{_fill(n, top)}" stroke="{stroke}" stroke-width="{width_px}"/>')
            if n:
                colour = '#ffffff' if n / top > 0.45 else '#1b1f24'
                parts.append(f'<text x="{x + CELL_W / 2:.0f}" y="{y + CELL_H / 2 + 4:.0f}" '
                             f'text-anchor="middle" fill="{colour}">{n}</text>')
            parts.append('</g>')
        # the account's total, split by severity
        x = bar_x
        for sev in SEVERITIES:
            n = row['by_severity'][sev]
            if not n:
                continue
            w = BAR_W * n / most
            parts.append(f'<rect x="{x:.1f}" y="{y + 5}" width="{w:.1f}" height="{CELL_H - 10}" '
                         f'fill="{SEVERITY_COLOURS[sev]}"><title>{n} {sev}</title></rect>')
            x += w
        parts.append(f'<text x="{x + 6:.1f}" y="{y + CELL_H / 2 + 4:.0f}">{row["total"]}</text>')
    legend_y = HEAD_H + CELL_H * len(rows) + 20
    x = LABEL_W
    parts.append(f'<text x="{LABEL_W - 8}" y="{legend_y}" text-anchor="end" fill="#57606a">'
                 f'worst severity</text>')
    for sev in SEVERITIES:
        parts.append(f'<rect x="{x}" y="{legend_y - 10}" width="12" height="12" '
                     f'fill="{SEVERITY_COLOURS[sev]}"/>'
                     f'<text x="{x + 16}" y="{legend_y}" fill="#57606a">{sev}</text>')
        x += 16 + 8 * len(sev) + 14
    parts.append('</svg>')
    return '\n'.join(parts)


def text(doc, width=100):
    """The same counts as a plain table, for the terminal."""
    if not wanted(doc):
        return ''
    rows = doc['summary']['by_account']
    steps = _steps(doc)
    name_w = min(max([len(r['account']) for r in rows] + [7]), 24)
    col = max([len(s) for s in steps] + [3]) + 1
    lines = ['Open findings per account and runbook step:',
             ' ' * (name_w + 2) + ''.join(s.rjust(col) for s in steps) + 'total'.rjust(col + 2)]
    for r in rows:
        cells = ''.join((str(r['by_step'].get(s, '')) or '.').rjust(col) for s in steps)
        lines.append('  ' + r['account'][:name_w].ljust(name_w) + cells
                     + str(r['total']).rjust(col + 2))
    return '\n'.join(line[:width * 2] for line in lines) + '\n'
