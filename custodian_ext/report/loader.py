"""Read Custodian output folders into PolicyRuns.

Layouts understood:

- ``custodian run`` in one region: ``OUT/<policy>/``;
- ``custodian run`` in several regions: ``OUT/<region>/<policy>/``;
- ``c7n-org run``: ``OUT/<account>/<region>/<policy>/``.

Each policy folder holds ``metadata.json`` (policy, config, metrics) and, when
the policy ran to the end, ``resources.json``. A folder without
``resources.json``, or whose metrics record ``PolicyException``, is an
errored run: it is never counted as clean. ``skipped.json`` (written by the
pack's hooks) marks a policy its conditions skipped on purpose.
"""
import json
import os

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


def read_run(path, root):
    meta_path = os.path.join(path, 'metadata.json')
    try:
        meta = _read_json(meta_path)
    except (OSError, ValueError) as e:
        raise ReportInputError(f"{meta_path}: unreadable metadata ({e})") from None
    policy = meta.get('policy') or {}
    config = meta.get('config') or {}
    rel = os.path.relpath(path, root).split(os.sep)
    account_id = str(config.get('account_id') or '')
    account = rel[-3] if len(rel) >= 3 else account_id
    run = PolicyRun(
        policy=policy.get('name') or os.path.basename(path),
        account=account or 'unknown',
        account_id=account_id,
        region=config.get('region') or (rel[-2] if len(rel) >= 2 else ''),
        status='clean',
        resource_type=policy.get('resource', ''),
        metadata=policy.get('metadata') or {},
        description=policy.get('description', ''),
        path=path)
    metrics = {m.get('MetricName') for m in meta.get('metrics') or ()}
    res_path = os.path.join(path, 'resources.json')
    if os.path.exists(os.path.join(path, 'skipped.json')):
        run.status = 'skipped'
    elif 'PolicyException' in metrics or not os.path.exists(res_path):
        run.status = 'errored'
        run.error = _last_error(os.path.join(path, 'custodian-run.log')) or (
            'policy did not finish: no resources.json')
    else:
        try:
            run.resources = _read_json(res_path)
        except (OSError, ValueError) as e:
            run.status = 'errored'
            run.error = f"unreadable resources.json ({e})"
        else:
            run.status = 'findings' if run.resources else 'clean'
    return run


def load_runs(paths):
    """Every policy run found under ``paths``; raises ReportInputError on bad input."""
    runs = []
    for root in paths:
        if not os.path.exists(root):
            raise ReportInputError(f"{root}: no such folder")
        if not os.path.isdir(root):
            raise ReportInputError(f"{root}: not a folder; give the -s output folder of a run")
        found = False
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            if 'metadata.json' in filenames:
                found = True
                runs.append(read_run(dirpath, root))
                dirnames[:] = []
        if not found:
            if not any(os.scandir(root)):
                raise ReportInputError(f"{root}: the folder is empty; run the policies first")
            raise ReportInputError(
                f"{root}: no Custodian output here (no metadata.json under it); give the "
                f"folder passed to -s")
    return runs


def findings(runs):
    out = []
    for run in runs:
        if run.status != 'findings':
            continue
        for r in run.resources:
            out.append(Finding(run, resource_id(run.resource_type, r), r))
    return out
