"""Read Custodian output folders into PolicyRuns.

Layouts understood:

- ``custodian run`` in one region: ``OUT/<policy>/``;
- ``custodian run`` in several regions: ``OUT/<region>/<policy>/``;
- ``c7n-org run``: ``OUT/<account>/<region>/<policy>/``;
- the same under ``s3://bucket/prefix`` (see ``custodian_ext.report.s3``).

Each policy folder holds ``metadata.json`` (policy, config, metrics) and, when
the policy ran to the end, ``resources.json``. A folder without
``resources.json``, or whose metrics record ``PolicyException``, is an
errored run: it is never counted as clean. ``skipped.json`` (written by the
pack's patches) marks a policy its conditions skipped on purpose, and
``partial.json`` a check that ran but could not read all it needed (its notes
say what). The pack's actions write ``action-results-<action>.json`` next to
them.

A policy folder holding ``custodian-run.log`` but no ``metadata.json`` is a run that
started and never finished (c7n writes the log as the policy starts and the metadata as
it ends: the process was killed, ran out of memory, or the machine stopped): an errored
run, named after its folder, never left out.

c7n-org runs every policy in every account and region it sweeps, so in that
layout a policy that has a folder in some account and region but none in
another swept one did not run there (it failed before Custodian wrote any
output): it is reported as ``missing``, which counts like an error.
"""
import glob
import json
import os

from custodian_ext.incomplete import reasons as incomplete_reasons

from custodian_ext.report.model import Finding, PolicyRun


class ReportInputError(ValueError):
    """The input is not Custodian output. The message is one line."""


def _read_json(path):
    with open(path) as fh:
        return json.load(fh)


def _last_error(log_path):
    """The most telling line of custodian-run.log: the exception, else the last ERROR."""
    try:
        with open(log_path, errors='replace') as fh:
            lines = [ln.rstrip() for ln in fh if ln.strip()]
    except OSError:
        return ''
    # the exception of the last traceback: its first line that is not indented (botocore
    # names denials after the error code, botocore.errorfactory.AccessDenied: ...)
    for i in range(len(lines) - 1, -1, -1):
        if lines[i].startswith('Traceback'):
            for ln in lines[i + 1:]:
                if not ln.startswith((' ', '\t')):
                    return ln[-500:]
            break
    for ln in reversed(lines):
        if not ln.startswith((' ', '\t', 'Traceback')) and ('Error' in ln or 'Exception' in ln):
            return ln[-500:]
    for ln in reversed(lines):
        if ':ERROR ' in ln:
            return ln[-500:]
    return ''


def resource_id(resource_type, resource):
    """The resource's id, from c7n's own resource metadata."""
    try:
        from c7n.provider import get_resource_class
        from c7n.resources import load_resources
        load_resources((resource_type,))
        rid = get_resource_class(resource_type).resource_type.id
        if rid and rid in resource:
            return str(resource[rid])
    except Exception:
        pass
    for k in ('Arn', 'arn', 'Id', 'id', 'Name', 'name'):
        if k in resource:
            return str(resource[k])
    return '?'


def _action_types(policy):
    out = []
    actions = policy.get('actions')
    for a in actions if isinstance(actions, list) else ():
        out.append(a if isinstance(a, str) else str(_mapping(a).get('type', '?')))
    return out


def _action_results(path):
    results = []
    for fp in sorted(glob.glob(os.path.join(path, 'action-results-*.json'))):
        try:
            data = _read_json(fp)
        except (OSError, ValueError) as e:
            raise ReportInputError(f"{fp}: unreadable action results ({e})") from None
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise ReportInputError(f"{fp}: expected a list of action results")
        results.extend(data)
    return results


def _partial(path):
    """The notes of ``partial.json`` (custodian_ext.outputs.mark_partial), or []."""
    fp = os.path.join(path, 'partial.json')
    if not os.path.exists(fp):
        return []
    try:
        data = _read_json(fp)
    except (OSError, ValueError) as e:
        raise ReportInputError(f"{fp}: unreadable ({e})") from None
    notes = data.get('notes') if isinstance(data, dict) else None
    if not isinstance(notes, list):
        raise ReportInputError(f"{fp}: expected {{\"notes\": [...]}}")
    return [str(n) for n in notes]


def _seconds(value):
    try:
        value = float(value)
    except (TypeError, ValueError):
        return 0.0
    return value if value > 0 and value == value and value != float('inf') else 0.0


# What a run writes into its policy folder, as results (not logs or evidence).
RESULT_FILES = ('resources.json', 'skipped.json', 'partial.json')
STALE_SLACK = 5.0  # seconds: files a run writes just before it records its start


def _stale_files(path, started):
    """Result files in ``path`` older than the run that wrote metadata.json: from another run."""
    if not started:
        return []
    out = []
    try:
        names = sorted(os.listdir(path))
    except OSError:
        return []
    for name in names:
        if not (name in RESULT_FILES or (name.startswith('action-results-')
                                         and name.endswith('.json'))):
            continue
        try:
            mtime = os.stat(os.path.join(path, name)).st_mtime
        except OSError:
            continue
        if mtime < started - STALE_SLACK:
            out.append((name, mtime))
    return out


def _text(value, default=''):
    return value if isinstance(value, str) else default


def _mapping(value):
    return value if isinstance(value, dict) else {}


def _resources(path):
    """resources.json as a list of resources, or (None, why) when it is not one."""
    try:
        data = _read_json(path)
    except (OSError, ValueError) as e:
        return None, f"unreadable resources.json ({e})"
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        return None, 'resources.json is not a list of resources (not Custodian output)'
    return data, ''


def read_run(path, root, label=None):
    """One policy folder. ``label`` is how the folder is named in the report
    (an S3 URL for S3 input), default ``path``."""
    meta_path = os.path.join(path, 'metadata.json')
    try:
        meta = _read_json(meta_path)
    except (OSError, ValueError) as e:
        raise ReportInputError(f"{meta_path}: unreadable metadata ({e})") from None
    if not isinstance(meta, dict) or not isinstance(meta.get('policy'), dict):
        raise ReportInputError(f"{meta_path}: not a Custodian metadata.json (no policy in it)")
    # Fields of the wrong type are read as absent: the file is not Custodian's own then.
    policy = meta['policy']
    config = _mapping(meta.get('config'))
    execution = _mapping(meta.get('execution'))
    rel = os.path.relpath(path, root).split(os.sep)
    account_id = config.get('account_id')
    account_id = str(account_id) if isinstance(account_id, (str, int)) and account_id else ''
    account = rel[-3] if len(rel) >= 3 else account_id
    tags = policy.get('tags')
    run = PolicyRun(
        policy=_text(policy.get('name')) or os.path.basename(path),
        account=account or 'unknown',
        account_id=account_id,
        region=_text(config.get('region')) or (rel[-2] if len(rel) >= 2 else ''),
        status='clean',
        resource_type=_text(policy.get('resource')),
        metadata=_mapping(policy.get('metadata')),
        description=_text(policy.get('description')),
        path=label or path,
        actions=_action_types(policy),
        dryrun=config.get('dryrun') is True,
        action_results=_action_results(path),
        duration=_seconds(execution.get('duration')),
        tags=[str(t) for t in tags] if isinstance(tags, list) else [])
    run.partial = _partial(path)
    run.started, run.ended = _seconds(execution.get('start')), _seconds(execution.get('end_time'))
    run.config = config
    run.stale = _stale_files(path, run.started)
    metrics = meta.get('metrics') if isinstance(meta.get('metrics'), list) else []
    metrics = {str(m.get('MetricName')) for m in metrics if isinstance(m, dict)}
    res_path = os.path.join(path, 'resources.json')
    if os.path.exists(os.path.join(path, 'skipped.json')):
        run.status = 'skipped'
    elif 'PolicyException' in metrics or not os.path.exists(res_path):
        run.status = 'errored'
        run.error = _last_error(os.path.join(path, 'custodian-run.log')) or (
            'the policy raised an error (custodian-run.log does not say which; c7n-org '
            'prints it in its own log)' if 'PolicyException' in metrics else
            'policy did not finish: no resources.json')
        if os.path.exists(res_path):  # an action failed after the resources were written
            run.resources = _resources(res_path)[0] or []
    else:
        resources, why = _resources(res_path)
        if resources is None:
            run.status = 'errored'
            run.error = why
        else:
            run.resources = resources
            run.status = 'findings' if run.resources else 'clean'
            gaps = incomplete_reasons(run.resources)
            if gaps:  # findings checked only in part (custodian_ext/incomplete.py)
                run.incomplete = gaps
                run.error = ('incomplete: ' + '; '.join(gaps))[:1000]
    return run


def missing_runs(runs):
    """Runs c7n-org should have written but did not (see the module docstring).

    Only for the c7n-org layout, and per kind (detect, respond): a sweep of
    detect policies and one of respond policies may share an output folder.
    """
    by_source = {}
    for r in runs:
        if r.layout == 'org':
            by_source.setdefault((r.source, r.kind), []).append(r)
    out = []
    for (source, kind), group in sorted(by_source.items()):
        policies = {}
        for r in group:
            policies.setdefault(r.policy, r)
        present = {(r.account, r.region, r.policy) for r in group}
        account_regions = sorted({(r.account, r.region) for r in group})
        ids = {r.account: r.account_id for r in group}
        for account, region in account_regions:
            for name in sorted(policies):
                if (account, region, name) in present:
                    continue
                model = policies[name]
                run = PolicyRun(
                    policy=name, account=account, account_id=ids.get(account, ''),
                    region=region, status='missing', resource_type=model.resource_type,
                    metadata=model.metadata, description=model.description,
                    path=os.path.join(source, account, region, name),
                    actions=model.actions, tags=model.tags,
                    error='no output: the policy did not run in this account and region')
                out.append(run)
    return out


RUN_LOG = 'custodian-run.log'


def unfinished_run(path, root, label=None):
    """A policy folder with ``custodian-run.log`` and no ``metadata.json``: it started and
    never finished. Its policy, region and account come from the folder's place."""
    rel = os.path.relpath(path, root).split(os.sep)
    last = _last_error(os.path.join(path, RUN_LOG))
    return PolicyRun(
        policy=rel[-1], account=rel[-3] if len(rel) >= 3 else 'unknown', account_id='',
        region=rel[-2] if len(rel) >= 2 else '', status='errored', path=label or path,
        error='policy did not finish: custodian-run.log but no metadata.json (its process '
              'ended while it ran)' + (f'; last error: {last}' if last else ''))



def _load_tree(root, label_root=None):
    """Every run under a local folder; ``label_root`` replaces ``root`` in paths."""
    runs = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        finished = 'metadata.json' in filenames
        if finished or (RUN_LOG in filenames and dirpath != root):
            label = None
            if label_root:
                rel = os.path.relpath(dirpath, root)
                label = label_root.rstrip('/') + '/' + rel.replace(os.sep, '/')
            run = read_run(dirpath, root, label) if finished else \
                unfinished_run(dirpath, root, label)
            depth = len(os.path.relpath(dirpath, root).split(os.sep))
            run.layout = 'org' if depth == 3 else 'run'
            run.source = label_root or root
            runs.append(run)
            dirnames[:] = []
    return runs


def load_runs(paths, missing=True, allow_mixed=False, warnings=None):
    """Every policy run found under ``paths`` (folders or s3:// URLs).

    Raises ReportInputError, with a one-line message, on bad input. With
    ``missing``, runs c7n-org should have written but did not are added with
    status ``missing``. A local folder that holds more than one run
    (``custodian_ext.report.mixed``) is refused unless ``allow_mixed``; then
    what was mixed is appended to ``warnings`` (a list), one line each.
    """
    from custodian_ext.report import mixed
    runs = []
    for root in paths:
        if root.startswith('s3://'):
            from custodian_ext.report import s3
            runs.extend(s3.load(root, _load_tree))
            continue
        if not os.path.exists(root):
            raise ReportInputError(f"{root}: no such folder")
        if not os.path.isdir(root):
            raise ReportInputError(f"{root}: not a folder; give the -s output folder of a run")
        found = _load_tree(root)
        if not found:
            if not any(os.scandir(root)):
                raise ReportInputError(f"{root}: the folder is empty; run the policies first")
            raise ReportInputError(
                f"{root}: no Custodian output here (no metadata.json under it); give the "
                f"folder passed to -s")
        signs = mixed.problems(found, root)
        if signs and not allow_mixed:
            more = f"; {len(signs) - 1} more sign(s)" if len(signs) > 1 else ''
            raise ReportInputError(
                f"{root}: mixes more than one run, not merged: {signs[0]}{more}; give each "
                f"run its own -s folder, or pass --allow-mixed to report them together")
        if signs and warnings is not None:
            warnings.extend(f"{root}: mixes more than one run: {s}" for s in signs)
        runs.extend(found)
    if missing:
        runs.extend(missing_runs(runs))
    return runs


def findings(runs):
    """Every resource of every run that matched (detect and respond runs alike)."""
    out = []
    for run in runs:
        if run.status != 'findings':
            continue
        for r in run.resources:
            out.append(Finding(run, resource_id(run.resource_type, r), r))
    return out
