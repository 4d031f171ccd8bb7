"""Did every c7n-org run happen? Expected account x region x policy runs against the output.

c7n-org exits 0 in cases where policies never ran: an exception raised while
a worker loads a policy (``expand_variables`` and ``validate`` run outside
its ``try``) is only logged, and an account whose role cannot be assumed may
leave no output at all (with ``-r all`` its region list is silently empty).
So a green c7n-org run proves nothing. This module computes, from the same
accounts file, policy file and selection flags c7n-org was given, every run
that should exist, and classifies each with the report loader:

- ``findings`` / ``clean``: ``resources.json`` written;
- ``skipped``: the policy's conditions skipped it (``skipped.json``, written
  by the pack's patches: a global policy outside ``global_region``, R3.3 in an
  allowed region);
- ``errored``: the policy started but did not finish;
- ``missing``: no output folder at all, so the run never happened;
- ``deployed``: a Lambda-mode policy (``custodian-ext periodic``) whose
  function was provisioned: ``metadata.json`` without ``PolicyException``.

Errored and missing runs are problems; ``custodian-ext org-check`` prints one
line per failed account-region and exits 2.
"""
import json
import os
import re
from collections import OrderedDict
from dataclasses import dataclass, field

import yaml

from custodian_ext.errors import PackError
from custodian_ext.report.loader import ReportInputError, read_run

OK_STATUSES = ('findings', 'clean', 'skipped', 'deployed')
NOT_RUN_FILE = 'not-run.json'


@dataclass
class Failure:
    """One account-region where at least one expected policy run failed."""
    account: str
    account_id: str
    region: str
    missing: list = field(default_factory=list)
    errored: list = field(default_factory=list)  # [(policy, error)]
    reasons: list = field(default_factory=list)  # from the c7n-org log

    @property
    def policies(self):
        return self.missing + [p for p, _ in self.errored]

    def line(self):
        parts = []
        if self.missing:
            parts.append(f"{len(self.missing)} polic{'y' if len(self.missing) == 1 else 'ies'} "
                         f"never ran ({', '.join(self.missing)})")
        for policy, error in self.errored:
            parts.append(f"{policy} errored: {error}")
        why = f"; c7n-org log: {self.reasons[0]}" if self.reasons else ''
        return (f"FAILED {self.account} ({self.account_id}) {self.region}: "
                + '; '.join(parts) + why)


@dataclass
class Check:
    expected: int = 0
    counts: dict = field(default_factory=dict)
    failures: list = field(default_factory=list)
    runs: list = field(default_factory=list)
    silent: list = field(default_factory=list)  # [(name, account id)] with no run at all
    shards: dict = field(default_factory=dict)  # {account name: shard index} (--shards N)
    shard_count: int = 0

    @property
    def ok(self):
        return not self.failures


def _load_yaml(path, what, hint):
    if not os.path.isfile(path):
        raise PackError(f"{what} {path} not found; {hint}")
    try:
        with open(path) as fh:
            return yaml.safe_load(fh) or {}
    except yaml.YAMLError as e:
        raise PackError(f"{path}: not valid YAML: {getattr(e, 'problem', None) or e}") from None


def load_accounts(path, accounts=(), tags=(), not_accounts=()):
    """The accounts c7n-org selects from ``path``, normalised as c7n-org does."""
    from c7n_org.cli import accounts_iterator, filter_accounts
    config = _load_yaml(path, 'accounts file',
                        'generate one with `c7n-org aws-accounts -f accounts.yml`')
    if not isinstance(config, dict) or not isinstance(config.get('accounts'), list):
        raise PackError(f"{path}: no 'accounts:' list")
    config['accounts'] = list(accounts_iterator(config))
    from c7n_org.cli import comma_expand
    filter_accounts(config, comma_expand(tags), accounts, not_accounts)
    return config['accounts']


def load_policies(path, policies=(), policy_tags=(), resource=None):
    """The policies c7n-org selects from ``path`` with -p / -l / --resource."""
    from c7n_org.cli import comma_expand, filter_policies
    config = _load_yaml(path, 'policy file',
                        'build it with `custodian-ext bundle policies/detect -o build/detect.yml`')
    if not isinstance(config, dict) or not isinstance(config.get('policies'), list):
        raise PackError(f"{path}: not a policy file (no top-level 'policies:' list)")
    filter_policies(config, comma_expand(policy_tags), comma_expand(policies), resource)
    return config['policies']


def account_regions(account, regions):
    """The regions c7n-org runs ``account`` in; 'all' is resolved as c7n-org does (API call)."""
    from c7n_org.cli import resolve_regions
    wanted = list(regions or account.get('regions') or ())
    resolved = list(resolve_regions(wanted, account))
    if 'all' in wanted and not resolved:
        raise PackError('could not list the regions enabled in the account (access denied)')
    return resolved


# c7n-org's log lines (c7n_org/cli.py) that say why an account-region failed.
LOG_PATTERNS = (
    re.compile(r"unable to obtain credentials for account:(?P<account>\S+) role:\S+ "
               r"error:(?P<error>.*)"),
    re.compile(r"Access denied api:(?P<api>\S+) policy:(?P<policy>\S+) account:(?P<account>\S+) "
               r"region:(?P<region>\S+)"),
    re.compile(r"Exception running policy:(?P<policy>\S+) account:(?P<account>\S+) "
               r"region:(?P<region>\S+) error:(?P<error>.*)"),
    re.compile(r"Error running policy in (?P<account>\S+) @ (?P<region>\S+) "
               r"exception: (?P<error>.*)"),
    re.compile(r"error \((?P<code>\S+)\) listing available regions for account:(?P<account>\S+) - "
               r"(?P<error>.*)"),
)


def log_reasons(path):
    """{(account, region or None): [reason, ...]} from a c7n-org log file."""
    out = {}
    if not path:
        return out
    try:
        with open(path, errors='replace') as fh:
            lines = fh.read().splitlines()
    except OSError as e:
        raise PackError(f"{path}: cannot read the c7n-org log ({e.strerror})") from None
    for line in lines:
        for pat in LOG_PATTERNS:
            m = pat.search(line)
            if not m:
                continue
            d = m.groupdict()
            if 'api' in d:
                reason = f"access denied calling {d['api']} (policy {d['policy']})"
            else:
                reason = d['error'].strip()
                if d.get('policy'):
                    reason = f"{d['policy']}: {reason}"
                if d.get('code'):
                    reason = f"cannot list regions: {d['code']}: {reason}"
            out.setdefault((d['account'], d.get('region')), []).append(reason[:400])
            break
    return out


def check_output(output_dir, accounts, policies, regions=(), log_file=None, shards=0):
    """Compare the output of a c7n-org run (a folder, or s3://bucket/prefix) with the runs
    it should hold. ``shards``: the sweep ran as that many shards (custodian_ext.shards)."""
    if str(output_dir).startswith('s3://'):
        import shutil
        import tempfile
        from custodian_ext.report import s3
        tmp = tempfile.mkdtemp(prefix='custodian-ext-org-check-')
        try:
            try:
                s3.download(output_dir, tmp)
            except ReportInputError as e:
                if 'nothing under this prefix' not in str(e):
                    raise PackError(str(e)) from None
            return check_output(tmp, accounts, policies, regions, log_file, shards)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    if '://' in str(output_dir):
        raise PackError(f"{output_dir}: org-check reads a local folder or s3://bucket/prefix")
    if not os.path.isdir(output_dir):
        raise PackError(f"{output_dir}: no such folder; pass the -s folder of the c7n-org run")
    if not policies:
        raise PackError('no policy selected; check -p / -l against the policy file')
    reasons = log_reasons(log_file)
    result = Check()
    if shards:
        from custodian_ext.shards import assignment
        result.shards, result.shard_count = assignment(accounts, shards), shards
    counts = OrderedDict((s, 0) for s in OK_STATUSES + ('errored', 'missing'))
    for account in accounts:
        name, account_id = account['name'], account.get('account_id', '')
        if not os.path.isdir(os.path.join(output_dir, name)):
            result.silent.append((name, account_id))
        acct_reasons = reasons.get((name, None), [])
        try:
            account_regions_ = account_regions(account, regions)
        except Exception as e:  # the account could not even be listed
            why = getattr(e, 'response', {}).get('Error', {}).get('Message') or str(e)
            failure = Failure(name, account_id, 'all', missing=[p['name'] for p in policies],
                              reasons=acct_reasons or [why])
            result.failures.append(failure)
            result.expected += len(policies)
            counts['missing'] += len(policies)
            continue
        for region in account_regions_:
            failure = Failure(name, account_id, region,
                              reasons=reasons.get((name, region), []) + acct_reasons)
            for p in policies:
                result.expected += 1
                path = os.path.join(output_dir, name, region, p['name'])
                if not os.path.isfile(os.path.join(path, 'metadata.json')) or \
                        os.path.exists(os.path.join(path, NOT_RUN_FILE)):
                    failure.missing.append(p['name'])
                    counts['missing'] += 1
                    continue
                try:
                    run = read_run(path, output_dir)
                except ReportInputError as e:
                    failure.errored.append((p['name'], str(e)))
                    counts['errored'] += 1
                    continue
                if run.status == 'errored' and _provisioned(p, path):
                    run.status, run.error = 'deployed', ''
                result.runs.append(run)
                counts[run.status] = counts.get(run.status, 0) + 1
                if run.status == 'errored':
                    failure.errored.append((p['name'], run.error))
            if failure.policies:
                result.failures.append(failure)
    result.counts = counts
    return result


def _provisioned(policy, path):
    """A Lambda-mode policy leaves metadata.json, not resources.json, when it deploys."""
    if ((policy.get('mode') or {}).get('type') or 'pull') == 'pull':
        return False
    try:
        with open(os.path.join(path, 'metadata.json')) as fh:
            metrics = json.load(fh).get('metrics') or ()
    except (OSError, ValueError):
        return False
    return 'PolicyException' not in {m.get('MetricName') for m in metrics}


def mark_missing(output_dir, check, policies):
    """Leave an errored-looking run folder for every run that never happened.

    The report (``custodian-ext report``) then lists these runs as errored,
    with the reason, instead of not knowing they were due: an account whose
    role could not be assumed shows up in the report and fails the CI gate.
    """
    by_name = {p['name']: p for p in policies}
    written = 0
    for f in check.failures:
        reason = '; '.join(f.reasons[:1]) or 'no output: c7n-org never ran this policy here'
        for name in f.missing:
            p = by_name[name]
            path = os.path.join(output_dir, f.account, f.region, name)
            os.makedirs(path, exist_ok=True)
            meta = {'policy': {k: p.get(k) for k in ('name', 'resource', 'description', 'metadata')
                               if k in p},
                    'config': {'account_id': f.account_id, 'region': f.region},
                    'metrics': [], 'custodian-ext': {'not-run': reason}}
            with open(os.path.join(path, 'metadata.json'), 'w') as fh:
                json.dump(meta, fh, indent=2)
            with open(os.path.join(path, NOT_RUN_FILE), 'w') as fh:
                json.dump({'account': f.account, 'region': f.region, 'policy': name,
                           'reason': reason}, fh, indent=2)
            with open(os.path.join(path, 'custodian-run.log'), 'w') as fh:
                fh.write(f"custodian-ext:ERROR never ran: {reason}\n")
            written += 1
    return written


def _shard_label(check, name):
    if not check.shard_count or name not in check.shards:
        return ''
    return f" [shard {check.shards[name]} of {check.shard_count}]"


def silent_lines(check):
    """With shards: one line per shard none of whose accounts wrote anything."""
    if not check.silent or not check.shard_count:
        return []
    silent = dict(check.silent)
    members = {}
    for name, index in check.shards.items():
        members.setdefault(index, []).append(name)
    lines = []
    for index in sorted(members):
        if all(n in silent for n in members[index]):
            lines.append(f"FAILED shard {index} of {check.shard_count}: none of its "
                         f"{len(members[index])} account(s) has any output "
                         f"({', '.join(sorted(members[index]))}); the job did not run, "
                         f"or wrote elsewhere")
    return lines


def unreported(runs, accounts, regions=(), shards=0):
    """Missing runs for the accounts of the accounts file that have no output at all.

    ``runs`` are a report's runs; each account of ``accounts`` (the full file a
    sharded sweep was cut from) without any c7n-org run gets a ``missing`` run
    for every policy the output holds, in each of its regions (its ``regions``
    in the file, else ``regions``, else every region the output holds).
    """
    from custodian_ext.report.model import PolicyRun
    org = [r for r in runs if r.layout == 'org']
    if not org:
        return []
    present = {r.account for r in org}
    policies = {}
    for r in org:
        policies.setdefault(r.policy, r)
    seen_regions = sorted({r.region for r in org})
    wanted = [r for r in regions or () if r != 'all']
    where = {}
    if shards:
        from custodian_ext.shards import assignment
        where = assignment(accounts, shards)
    source = org[0].source
    out = []
    for a in accounts:
        name = a['name']
        if name in present:
            continue
        own = [r for r in a.get('regions') or () if r != 'all']
        label = f" (shard {where[name]} of {shards})" if name in where else ''
        for region in own or wanted or seen_regions:
            for pname in sorted(policies):
                model = policies[pname]
                out.append(PolicyRun(
                    policy=pname, account=name, account_id=str(a.get('account_id', '')),
                    region=region, status='missing', resource_type=model.resource_type,
                    metadata=model.metadata, description=model.description,
                    path=os.path.join(source, name, region, pname), actions=model.actions,
                    tags=model.tags, source=source, layout='org',
                    error=f"no output: account {name} was never swept{label}"))
    return out


def render(check):
    c = check.counts
    deployed = f"{c['deployed']} deployed, " if c.get('deployed') else ''
    lines = [f"org-check: {check.expected} run(s) expected; {deployed}"
             f"{c.get('findings', 0)} with findings, {c.get('clean', 0)} clean, "
             f"{c.get('skipped', 0)} skipped by their conditions, "
             f"{c.get('errored', 0)} errored, {c.get('missing', 0)} never ran"]
    for f in sorted(check.failures, key=lambda f: (f.account, f.region)):
        lines.append(f.line() + _shard_label(check, f.account))
    lines.extend(silent_lines(check))
    if check.ok:
        lines.append('org-check: every expected run completed')
    else:
        accounts = sorted({f.account for f in check.failures})
        lines.append(f"org-check: {len(check.failures)} account-region(s) in "
                     f"{len(accounts)} account(s) failed; their results are unknown, not clean")
    return '\n'.join(lines) + '\n'
