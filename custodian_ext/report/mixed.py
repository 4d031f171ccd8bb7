"""Tell when one output folder holds more than one run, so the report never merges them silently.

``custodian run -s out`` and ``c7n-org run -s out`` write one folder per
policy (and account and region) and leave every other file in ``out`` alone.
Run twice into the same folder (another day, other policies, another
accounts file), ``out`` holds both runs, and a report over it would present
yesterday's results as today's, or an errored run as the clean one it left
behind. Signs of that, per ``OUT_DIR`` given to the report (S3 input is
exempt: periodic functions run each policy on its own schedule):

- a policy folder whose ``resources.json``, ``skipped.json``,
  ``partial.json`` or ``action-results-*.json`` was written before the run
  recorded in its ``metadata.json`` started (by more than a few seconds): left
  by an earlier run that this one did not overwrite;
- runs of one kind (detect, respond) separated by more than ``MAX_GAP`` in
  which no policy ran: one invocation runs its policies back to back;
- ``custodian run`` output whose runs differ in how they were started: the
  account, the vars file, the policy files or the region list;
- ``c7n-org`` output whose account folder holds runs of two account ids
  (two accounts files that gave one name to different accounts).

Copying a folder without its modification times (``cp`` without ``-p``)
hides the first sign, not the others.
"""
import datetime
import os

MAX_GAP = 10 * 60  # seconds without any policy running, inside one invocation
# config keys one `custodian run` invocation shares across all its policy runs
RUN_KEYS = (('account_id', 'account'), ('vars_file', 'vars file'),
            ('configs', 'policy files'), ('regions', 'region list'),
            ('profile', 'profile'), ('assume_role', 'assumed role'))


def _when(seconds):
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime(
        '%Y-%m-%dT%H:%M:%SZ')


def _where(run, root):
    return os.path.relpath(run.path, root) if run.path.startswith(root) else run.path


def problems(runs, root):
    """One line per sign that ``runs`` (all read from ``root``) come from more than one run."""
    out = []
    for run in runs:
        for name, mtime in run.stale:
            out.append(f"{_where(run, root)}/{name} was written {_when(mtime)}, before the run "
                       f"in its metadata.json started ({_when(run.started)})")
    groups = {}
    for run in runs:
        if run.status != 'missing':
            groups.setdefault(run.kind, []).append(run)
    for kind, group in sorted(groups.items()):
        out.extend(_gaps(kind, group))
        if all(r.layout == 'run' for r in group):
            out.extend(_config_differences(kind, group, root))
        else:
            out.extend(_accounts(group, root))
    return out


def _gaps(kind, group):
    spans = sorted((r.started, max(r.ended, r.started)) for r in group if r.started)
    out = []
    end = None
    for start, stop in spans:
        if end is not None and start - end > MAX_GAP:
            out.append(f"{kind} runs stop at {_when(end)} and start again at {_when(start)}, "
                       f"{int((start - end) // 60)} minutes later")
        end = stop if end is None else max(end, stop)
    return out


def _config_differences(kind, group, root):
    out = []
    for key, label in RUN_KEYS:
        values = {}
        for r in group:
            if key in r.config and r.config[key] not in (None, [], ''):
                values.setdefault(repr(r.config[key]), r)
        if len(values) > 1:
            (a, ra), (b, rb) = list(values.items())[:2]
            out.append(f"{kind} runs with different {label}: {_where(ra, root)} ({a}) and "
                       f"{_where(rb, root)} ({b})")
    return out


def _accounts(group, root):
    out = []
    ids = {}
    for r in group:
        if r.account_id:
            ids.setdefault(r.account, {}).setdefault(r.account_id, r)
    for account, by_id in sorted(ids.items()):
        if len(by_id) > 1:
            (a, ra), (b, rb) = list(by_id.items())[:2]
            out.append(f"account folder {account} holds runs of accounts {a} "
                       f"({_where(ra, root)}) and {b} ({_where(rb, root)})")
    return out
