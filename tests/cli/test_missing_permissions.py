"""Every missing permission surfaced: remove each permission of the generated detect policy.

On an emulator that enforces IAM (custodian_ext_dev/emulator/iam_auth.py), a
compromised account (tests/least_privilege.py) is swept by the real
``custodian run`` of policies/detect as roles that hold the policy
``custodian-ext permissions policies/detect`` prints, less some of its
permissions:

1. a sweep with the whole policy (and the pack's caches off, so that each
   policy makes its own calls) gives the baseline: each policy run's
   findings, and the IAM actions of the calls it made (c7n's api-stats);
2. the permissions are put in groups such that no policy needs two of one
   group (declared or called), so every failure names one cause;
3. for each group, a sweep as a role without it: every policy run that
   called a removed action must be errored, or report findings marked
   incomplete (custodian_ext/incomplete.py: a trail bucket it could not read),
   its error (and the report's) must name that action, and
   ``custodian-ext report --fail-on critical`` must exit 2; every other run
   must give the baseline's findings. No check that lost a permission may come
   back clean or complete.

``sts:GetCallerIdentity`` is not removed: AWS allows it to every caller.
"""
import json
import os
from concurrent.futures import ThreadPoolExecutor

import pytest

from custodian_ext.report import load_runs
from custodian_ext.report.loader import resource_id
from custodian_ext_dev.emulator import Emulator
from tests import least_privilege as lp
from tests.support import POLICIES, run_cli

pytestmark = pytest.mark.e2e

DETECT = os.path.join(POLICIES, 'detect')
UNDENIABLE = {'sts:GetCallerIdentity'}
SWEEPS_AT_ONCE = 3
# The sweep's own principals: their use and changes show in the checks of
# activity (R1.1, R1.2, R2.2) and differ from run to run.
OWN = ('pack-', lp.OPERATOR)


@pytest.fixture(scope='module')
def world(tmp_path_factory):
    log = tmp_path_factory.mktemp('iam-emulator') / 'emulator.log'
    with Emulator(log_file=str(log), iam_auth='inf') as emu:
        w = lp.compromised_world(emu)
        env = emu.env()
        w.generated = json.loads(run_cli(['custodian-ext', 'permissions', DETECT], env,
                                         check=0).stdout)
        lines = run_cli(['custodian-ext', 'permissions', DETECT, '--format', 'policies'], env,
                        check=0).stdout.splitlines()
        w.declared = {ln.split(':', 1)[0]: set(ln.split(': ', 1)[1].split()) for ln in lines}
        emu.enforce_iam(0)
        yield w


def actions_of(doc):
    return {a for st in doc['Statement'] for a in st['Action']}


def without(doc, removed):
    out = {'Version': doc['Version'], 'Statement': []}
    for st in doc['Statement']:
        kept = [a for a in st['Action'] if a not in removed]
        if kept:
            out['Statement'].append(dict(st, Action=kept))
    return out


def plan(actions, uses):
    """Groups of actions, no two of one group used by the same policy (greedy colouring)."""
    conflicts = {a: set() for a in actions}
    for used in uses.values():
        for a in used & actions:
            conflicts[a] |= (used & actions) - {a}
    groups = []
    for a in sorted(actions, key=lambda a: (-len(conflicts[a]), a)):
        for g in groups:
            if not g & conflicts[a]:
                g.add(a)
                break
        else:
            groups.append({a})
    return groups


def findings_of(run):
    if run.status != 'findings':
        return run.status, frozenset()
    ids = {resource_id(run.resource_type, r) for r in run.resources}
    return run.status, frozenset(i for i in ids if not i.startswith(OWN))


def normalised(run):
    status, ids = findings_of(run)
    return ('clean' if status == 'findings' and not ids else status), ids


def test_every_removed_permission_is_surfaced(world, tmp_path):
    w = world
    generated = actions_of(w.generated)
    groups = plan(generated - UNDENIABLE, {p: a for p, a in w.declared.items()})
    # every role exists, and is assumed, before the baseline: creating and assuming them
    # are IAM and STS activity the checks of R2.2 would otherwise see change
    w.role('pack-detect', w.generated)
    for i, group in enumerate(groups):
        w.role(f'pack-minus-{i}', without(w.generated, group))
    variables = lp.world_vars(w)

    proc = lp.sweep(w, 'pack-detect', str(tmp_path / 'baseline'), variables, lp.TWO_REGIONS,
                    uncached=True)
    baseline = {(r.policy, r.region): r for r in load_runs([str(tmp_path / 'baseline/out')])}
    errored = [(k, r.error) for k, r in baseline.items() if r.status == 'errored']
    assert proc.returncode == 0 and not errored, (errored, proc.stderr[-2000:])
    called = {k: lp.api_actions(r) for k, r in baseline.items()
              if os.path.exists(os.path.join(r.path, 'metadata.json'))}
    # each policy declares what it calls (so the groups hold for the calls too, and a
    # policy run on its own has its permissions)
    undeclared = {k: sorted(acts - w.declared[k[0]]) for k, acts in called.items()
                  if acts - w.declared[k[0]]}
    assert not undeclared, f"calls a policy's permissions leave out: {undeclared}"

    def minus(i):
        # each sweep and its report as the role without group i; the sweeps mostly wait on
        # the network and CloudTrail's pacing, so a few run at once (each is its own
        # role: its own calls are left out of the comparison, OWN)
        out = tmp_path / f'minus-{i}'
        proc = lp.sweep(w, f'pack-minus-{i}', str(out), variables, lp.TWO_REGIONS)
        rep = run_cli(['custodian-ext', 'report', str(out / 'out'), '--format', 'json',
                       '-o', str(out / 'report'), '--fail-on', 'critical'], w.emulator.env())
        return out, proc, rep

    with ThreadPoolExecutor(max_workers=SWEEPS_AT_ONCE) as pool:
        swept = list(pool.map(minus, range(len(groups))))

    problems, surfaced, incomplete = [], 0, 0
    for (out, proc, rep), group in zip(swept, groups):
        runs = {(r.policy, r.region): r for r in load_runs([str(out / 'out')])}
        affected = {k: (called.get(k, set()) & group) for k in baseline}
        affected = {k: a.pop() for k, a in affected.items() if a}
        for key, base in baseline.items():
            run = runs.get(key)
            if run is None:
                problems.append(f"{sorted(group)}: {key} did not run")
            elif key in affected:
                action = affected[key]
                if run.status != 'errored' and not run.incomplete:
                    problems.append(f"without {action}: {key} came back {run.status}")
                elif action not in (run.error or ''):
                    problems.append(f"without {action}: {key} {run.status} without naming it: "
                                    f"{run.error}")
                else:
                    surfaced += 1
                    incomplete += bool(run.incomplete)
            elif (run.status == 'errored' or run.incomplete) and any(
                    a in (run.error or '') for a in group):
                # a denial another policy's shared read met first (the suspects of one
                # account, the trails of a region, are read once per run): errored or
                # incomplete, naming it, is surfaced
                surfaced += 1
                incomplete += bool(run.incomplete)
            elif normalised(run) != normalised(base):
                problems.append(f"without {sorted(group)}: {key} changed silently: "
                                f"{normalised(base)} -> {normalised(run)} {run.error or ''}")
        report_dir = out / 'report'
        if affected:
            if proc.returncode == 0:
                problems.append(f"without {sorted(group)}: custodian run exited 0")
            if rep.returncode != 2:
                problems.append(f"without {sorted(group)}: the report gate exited "
                                f"{rep.returncode}, not 2")
            with open(report_dir / 'report.json') as fh:
                listed = {(p['policy'], p['region']): p['error'] or ''
                          for p in json.load(fh)['problems']}
            for key, action in affected.items():
                if action not in listed.get(key, ''):
                    problems.append(f"without {action}: the report does not list {key} "
                                    f"as errored naming it")
    exercised = {a for acts in called.values() for a in acts} - UNDENIABLE
    print(f"\npermissions in the generated detect policy: {len(generated)}; removed in "
          f"{len(groups)} sweeps: {len(generated - UNDENIABLE)}; exercised by the seeded "
          f"account: {len(exercised)} (not: {sorted(generated - UNDENIABLE - exercised)}); "
          f"denials surfaced as errored (or incomplete: {incomplete}) checks naming the "
          f"action: {surfaced}; "
          f"checks silently clean: {len(problems)}")
    assert not problems, '\n'.join(problems)
    # every permission but the date-bound Cost Explorer call (not made on the 1st of a
    # month, when there is no full day to compare) is exercised by the seeded account
    # The activity review's trail-log reads (s3:ListBucket, s3:GetObject) and AWS Health's
    # affected entities need a delivered trail log and a Health notice, which this world
    # does not seed; tests/cli/test_r2_2_activity.py exercises them.
    assert generated - UNDENIABLE - exercised <= {
        'ce:GetCostAndUsage', 's3:ListBucket', 's3:GetObject', 'health:DescribeAffectedEntities'}
