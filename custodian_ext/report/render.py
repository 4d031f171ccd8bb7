"""Render the report document (``document.build``) in each format, with Jinja2 templates.

Formats (``--format``): ``md`` (a CI job summary), ``html`` (one self-contained
file, sortable and filterable, works offline), ``json`` (the document itself,
see ``docs/report-schema.json``), ``junit`` (one test case per policy, account
and region) and ``text`` (the terminal summary).
"""
import json
import os
import re

import jinja2

from custodian_ext.report import activity
from custodian_ext.report.loader import ReportInputError
from custodian_ext.report.model import SEVERITIES, step_key

TEMPLATES = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'templates')

FORMATS = {
    # format: (file name, template or None for JSON)
    'md': ('report.md', 'report.md.j2'),
    'html': ('report.html', 'report.html.j2'),
    'json': ('report.json', None),
    'junit': ('report.junit.xml', 'report.junit.xml.j2'),
    'text': ('report.txt', 'report.txt.j2'),
}

# Rows per policy in the Markdown summary: GitHub caps a job summary at 1 MiB.
MD_ROWS_PER_POLICY = 50
# Timeline rows per suspect credential in the Markdown and JUnit output (all are in JSON/HTML).
MD_EVENTS_PER_SUSPECT = 100

_XML_INVALID = re.compile('[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]')


def parse_formats(value):
    """'md,html' -> ['md', 'html']; raises ReportInputError on an unknown format."""
    out = []
    for f in (value or '').split(','):
        f = f.strip().lower()
        if not f:
            continue
        if f not in FORMATS:
            raise ReportInputError(
                f"--format: unknown format {f!r}; choose from {', '.join(FORMATS)}")
        if f not in out:
            out.append(f)
    if not out:
        raise ReportInputError(f"--format: name at least one of {', '.join(FORMATS)}")
    return out


def _md_cell(value):
    """Text safe inside a Markdown table cell."""
    text = '' if value is None else str(value)
    text = text.replace('\\', '\\\\').replace('|', '\\|').replace('\r', '')
    return text.replace('\n', '<br>')


def _md_inline(value):
    return ('' if value is None else str(value)).replace('\n', ' ').strip()


def _xml_text(value):
    return _XML_INVALID.sub('', '' if value is None else str(value))


def _environment(autoescape):
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=autoescape, undefined=jinja2.StrictUndefined,
        trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters['mdcell'] = _md_cell
    env.filters['inline'] = _md_inline
    env.filters['xmltext'] = _xml_text
    env.filters['stepkey'] = lambda s: '%d-%03d-%03d-%s' % step_key(s)
    return env


def sections(doc):
    """Findings grouped by step, then policy, in the document's order."""
    out = []
    for f in doc['findings']:
        if not out or out[-1]['step'] != f['step']:
            out.append({'step': f['step'], 'title': f['step_title'], 'policies': []})
        policies = out[-1]['policies']
        if not policies or policies[-1]['policy'] != f['policy']:
            policies.append({
                'policy': f['policy'], 'severity': f['severity'],
                'description': f['description'], 'remediation': f['remediation'],
                'respond_policy': f['respond_policy'], 'attack': f['attack'],
                'resource_type': f['resource_type'], 'findings': []})
        policies[-1]['findings'].append(f)
    return out


def skipped_runs(doc):
    """Skipped runs, one entry per policy with where it was skipped."""
    out = {}
    for r in doc['runs']:
        if r['status'] == 'skipped':
            out.setdefault(r['policy'], []).append(f"{r['account']}/{r['region']}")
    return [{'policy': p, 'where': w} for p, w in out.items()]


def junit_cases(doc):
    """One test case per policy run (policy x account x region), grouped by step."""
    gate = doc['gate']['fail_on']
    by_run = {}
    for f in doc['findings']:
        by_run.setdefault((f['policy'], f['account'], f['region']), []).append(f)
    contained = {}
    for c in doc['contained']:
        contained.setdefault((c['policy'], c['account'], c['region']), []).append(c)
    suites = {}
    for r in doc['runs']:
        key = (r['policy'], r['account'], r['region'])
        found = by_run.get(key, [])
        failing = [f for f in found if gate and
                   SEVERITIES.index(f['severity']) <= SEVERITIES.index(gate)]
        case = {'run': r, 'findings': found, 'failing': failing,
                'contained': contained.get(key, []),
                'name': f"{r['policy']} [{r['account']}/{r['region']}]",
                'classname': f"{r['step'] or 'unknown'}.{r['policy']}"}
        suites.setdefault(r['step'] or 'unknown', []).append(case)
    out = []
    for step in sorted(suites, key=step_key):
        cases = suites[step]
        out.append({
            'step': step, 'cases': cases, 'tests': len(cases),
            'failures': sum(1 for c in cases if c['failing']
                            and c['run']['status'] not in ('errored', 'missing')),
            'errors': sum(1 for c in cases if c['run']['status'] in ('errored', 'missing')),
            'skipped': sum(1 for c in cases if c['run']['status'] == 'skipped'),
            'time': round(sum(c['run']['duration'] for c in cases), 3)})
    return out


def activity_context(doc, fmt):
    """The activity review's extras for the templates: the timeline layout (HTML), a
    finding id -> table row map, and the one-line event text."""
    act = doc.get('activity') or {'suspects': [], 'coverage': [], 'summary': {}}
    return {'doc': act,
            'svg': activity.timeline_svg(act) if fmt == 'html' and act['suspects'] else None,
            'rows': {f['id']: i for i, f in enumerate(doc['findings'], 1)},
            'text': activity.event_text, 'md_events': MD_EVENTS_PER_SUSPECT}


def render(doc, fmt):
    """The report in format ``fmt`` as a string."""
    if fmt == 'json':
        return json.dumps(doc, indent=2, sort_keys=False, default=str) + '\n'
    _, template = FORMATS[fmt]
    env = _environment(autoescape=fmt in ('html', 'junit'))
    context = {'doc': doc, 'sections': sections(doc), 'skipped': skipped_runs(doc),
               'severities': SEVERITIES, 'md_rows': MD_ROWS_PER_POLICY, 'width': 100}
    if fmt == 'junit':
        context['suites'] = junit_cases(doc)
    context['activity'] = activity_context(doc, fmt)
    context['activity_colours'] = activity.TACTIC_COLOURS
    return env.get_template(template).render(**context)


def write(doc, formats, out_dir):
    """Write each format into ``out_dir``; returns the paths written."""
    os.makedirs(out_dir, exist_ok=True)
    written = []
    for fmt in formats:
        path = os.path.join(out_dir, FORMATS[fmt][0])
        with open(path, 'w', encoding='utf-8') as fh:
            fh.write(render(doc, fmt))
        written.append(path)
    return written
