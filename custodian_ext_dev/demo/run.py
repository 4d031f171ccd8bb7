"""``make demo``: the pack against a compromised organization on the local emulator.

1. Start the emulator (moto, loopback only) and create an organization of
   three accounts (``custodian_ext_dev.demo.story``): acme-prod is compromised,
   acme-management and acme-dev are clean but busy.
2. Sweep it with the stock ``c7n-org run`` and the detect policies, as the
   management account's incident-responder user, reaching the members with
   sts:AssumeRole.
3. Run the respond policies (``policies/respond``) with ``--dryrun`` to show
   what would be contained; with ``respond=True`` (``make demo-respond``) run
   them for real instead, then sweep again to show the findings gone.
4. Write the report in every format to ``demo-output/report/`` (OCSF events
   included), with the demo's triage file (``triage.yml`` here, dates filled
   in relative to today) applied; print its Markdown summary and where the
   HTML file is.

No AWS account or credentials are needed or used: the emulator runs on a
loopback port, and every child process gets only that endpoint. The
emulator, c7n-org and c7n-org's workers are stopped when the demo ends, is
interrupted (Ctrl-C) or is terminated.
"""
import contextlib
import datetime
import json
import re
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import yaml

from custodian_ext import paths
from custodian_ext_dev.demo import bundle, story
from custodian_ext_dev.emulator import Emulator, client_env, session as emulator_session
from custodian_ext.errors import PackError
from custodian_ext.report import document, render
from custodian_ext.report.loader import load_runs

QUICK_REGIONS = ['us-east-1', story.UNUSED_REGION]
FORMATS = ['md', 'html', 'json', 'junit', 'ocsf']
TRIAGE = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'triage.yml')


def say(msg):
    sys.stdout.write(f"[demo {time.strftime('%H:%M:%S')}] {msg}\n")
    sys.stdout.flush()


def custodian_bin(name):
    """The console script next to this interpreter (the pack's venv)."""
    candidate = os.path.join(os.path.dirname(sys.executable), name)
    return candidate if os.path.exists(candidate) else shutil.which(name) or name


def _die_with_parent():
    # Linux: the child gets SIGTERM if the demo dies without cleaning up (kill -9).
    try:
        import ctypes
        ctypes.CDLL('libc.so.6', use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def stop_group(proc, timeout=5):
    """Stop a child started in its own process group, and everything it forked."""
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, timeout)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            # the group may outlive its leader for a moment: make sure it is gone
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue
        _wait_group_gone(proc.pid, wait)
        return


def _wait_group_gone(pgid, timeout):
    """SIGKILL is delivered, and the killed reaped, a moment after killpg returns."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()  # not time.sleep: a caller's patched sleep must not run here
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        pause.wait(0.02)


@contextlib.contextmanager
def terminate_as_interrupt():
    """SIGTERM unwinds like Ctrl-C, so that every ``finally`` stops its processes."""
    def handler(signum, frame):
        raise KeyboardInterrupt
    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def count_runs(out_dir):
    n = 0
    for _, _, files in os.walk(out_dir):
        n += 'metadata.json' in files
    return n


def c7n_org(label, accounts_file, policy_file, out_dir, regions, env, log_dir, dryrun=False,
            expected=0):
    """Run the stock c7n-org, printing progress; returns its exit status."""
    cmd = [custodian_bin('c7n-org'), 'run', '-c', accounts_file, '-u', policy_file,
           '-s', out_dir, '--cache-period', '0']
    for r in regions:
        cmd += ['-r', r]
    if dryrun:
        cmd.append('--dryrun')
    log_path = os.path.join(log_dir, f'c7n-org-{label}.log')
    say(f"{label}: c7n-org {' '.join(cmd[2:])}")
    started = time.time()
    with open(log_path, 'w') as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, preexec_fn=_die_with_parent)
        try:
            last = shown = -1
            while proc.poll() is None:
                time.sleep(0.5)
                done = count_runs(out_dir)
                if done != last and time.time() - shown >= 5:
                    say(f"{label}: {done}/{expected} policy runs written")
                    last, shown = done, time.time()
        finally:
            stop_group(proc)
    done = count_runs(out_dir) if os.path.isdir(out_dir) else 0
    say(f"{label}: {done} policy runs in {time.time() - started:.0f}s "
        f"(exit {proc.returncode}; log: {log_path})")
    if not done:
        raise PackError(f"c7n-org wrote no output for the {label}; see {log_path}")
    if proc.returncode:
        say(f"{label}: some policies errored; the report lists them, {log_path} says why")
    return proc.returncode


def write_triage(output, today=None):
    """The demo's triage file with its ``{days:N}`` dates filled in; returns its path."""
    today = today or datetime.datetime.now(datetime.timezone.utc).date()
    with open(TRIAGE) as fh:
        text = fh.read()
    text = re.sub(r"\{days:(-?\d+)\}",
                  lambda m: (today + datetime.timedelta(days=int(m.group(1)))).isoformat(), text)
    path = os.path.join(output, 'triage.yml')
    with open(path, 'w') as fh:
        fh.write(text)
    return path


def write_report(sources, out_dir, triage_file=None):
    from custodian_ext.report import triage
    runs = load_runs(sources)
    accepted = triage.load(triage_file) if triage_file else None
    doc = document.build(runs, fail_on='high', sources=sources, triage=accepted)
    render.write(doc, FORMATS, out_dir)
    return doc


def respond_policies():
    folder = os.path.join(paths.policies_dir(), 'respond')
    if os.path.isdir(folder) and any(f.endswith('.yml') for f in os.listdir(folder)):
        return folder
    return None


def seed(url, regions_note=''):
    """The organization, before and after incident_start. Returns what the sweep needs."""
    ids = story.create_organization(url)
    say(f"organization: {', '.join(f'{n} ({i})' for n, i in ids.items())}")
    keys = {}
    for name, account_id in ids.items():
        keys[name] = story.seed_busy(url, account_id, name, ids[story.MANAGEMENT])
    story.seed_baseline(url, ids[story.COMPROMISED])
    leaked = story.leak_key(url, ids[story.COMPROMISED])
    known = {name: story.known_principals(url, account_id) for name, account_id in ids.items()}
    # The story's own sessions into the members, opened before the incident: opening them
    # later would show, in the management account's CloudTrail, its root user assuming
    # roles after incident_start, which the activity review rightly reports.
    sessions = {name: emulator_session(url, ids[name]) for name in (story.COMPROMISED, story.DEV)}
    incident_start = story.incident_boundary()
    say(f"incident starts {incident_start}: deploy-bot's key {leaked['AccessKeyId']} is "
        f"used from {story.ATTACKER_IP} in {story.COMPROMISED}")
    found = story.seed_compromise(url, ids[story.COMPROMISED], leaked,
                                  session=sessions[story.COMPROMISED])
    story.seed_ordinary_work(url, ids[story.DEV], story.DEV, session=sessions[story.DEV])
    return ids, keys, known, incident_start, found


def accounts_config(ids, known, incident_start):
    """The c7n-org accounts file: shared settings on top, known principals per account."""
    accounts = []
    for name, account_id in ids.items():
        users, roles = known[name]
        accounts.append({
            'name': name, 'account_id': account_id,
            'role': f'arn:aws:iam::{account_id}:role/{story.AUDIT_ROLE}',
            'vars': {'known_users': users, 'known_roles': roles}})
    return {'vars': story.org_vars(incident_start, ids), 'accounts': accounts}


def run_demo(output='demo-output', quick=False, respond=False, policies=None,
             respond_folder=None):
    """The whole demo; returns the report document of the first sweep (and containment).

    ``policies`` and ``respond_folder`` default to policies/detect and policies/respond.
    """
    started = time.time()
    detect_dir = policies or paths.policies_dir('detect')
    respond_dir = respond_folder or respond_policies()
    regions = QUICK_REGIONS if quick else story.SWEEP_REGIONS
    if os.path.exists(output):
        shutil.rmtree(output)
    logs = os.path.join(output, 'logs')
    out = os.path.join(output, 'out')
    os.makedirs(logs)
    with terminate_as_interrupt():
        say('starting the local AWS emulator (moto) on a loopback port')
        with Emulator(log_file=os.path.join(logs, 'emulator.log')) as emu:
            say(f'emulator at {emu.url}; seeding a three-account organization')
            ids, keys, known, incident_start, found = seed(emu.url)
            config = accounts_config(ids, known, incident_start)
            accounts_file = os.path.join(output, 'accounts.yml')
            with open(accounts_file, 'w') as fh:
                yaml.safe_dump(config, fh, sort_keys=False)
            with open(os.path.join(output, 'artifacts.json'), 'w') as fh:
                json.dump({'incident_start': incident_start, 'accounts': ids,
                           'compromised': story.COMPROMISED,
                           'artifacts': [dict(a.__dict__, resource=found.get(a.key))
                                         for a in story.ARTIFACTS]}, fh, indent=2)
            responder = keys[story.MANAGEMENT][story.RESPONDER]
            env = client_env(emu.url)
            env.update({'AWS_ACCESS_KEY_ID': responder['AccessKeyId'],
                        'AWS_SECRET_ACCESS_KEY': responder['SecretAccessKey'],
                        'HOME': os.path.abspath(os.path.join(output, 'home'))})
            env.pop('AWS_SESSION_TOKEN', None)
            env.setdefault('C7N_ORG_PARALLEL', '4')  # measured best on 2 cores
            os.makedirs(env['HOME'])

            detect = os.path.join(output, 'detect.yml')
            names = bundle.write_bundle(detect_dir, detect)
            per_sweep = len(names) * len(ids) * len(regions)
            say(f"sweeping {len(ids)} accounts x {len(regions)} regions with "
                f"{len(names)} detect policies ({', '.join(regions)})")
            c7n_org('sweep', accounts_file, detect, os.path.join(out, 'detect'), regions, env,
                    logs, expected=per_sweep)
            sources = [os.path.join(out, 'detect')]
            if respond_dir is None:
                say('no policies/respond folder on this branch: nothing to contain yet')
            else:
                respond_file = os.path.join(output, 'respond.yml')
                rnames = bundle.write_bundle(respond_dir, respond_file)
                label = 'respond' if respond else 'respond-dryrun'
                say(f"{label}: {len(rnames)} respond policies"
                    + ('' if respond else ' with --dryrun: what would be contained'))
                c7n_org(label, accounts_file, respond_file, os.path.join(out, label), regions,
                        env, logs, dryrun=not respond,
                        expected=len(rnames) * len(ids) * len(regions))
                sources.append(os.path.join(out, label))
                if respond:
                    c7n_org('re-sweep', accounts_file, detect, os.path.join(out, 'after'),
                            regions, env, logs, expected=per_sweep)
        say('emulator stopped; writing the report')
        triage_file = write_triage(output)
        doc = write_report(sources, os.path.join(output, 'report'), triage_file)
        sys.stdout.write('\n')
        with open(os.path.join(output, 'report', 'report.md')) as fh:
            sys.stdout.write(fh.read())
        sys.stdout.write('\n')
        if respond and respond_dir:
            after = write_report([os.path.join(out, 'after')],
                                 os.path.join(output, 'report-after'), triage_file)
            show_before_after(doc, after)
            after_html = os.path.abspath(os.path.join(output, 'report-after', 'report.html'))
            say(f'after containment: {after_html}')
        html = os.path.abspath(os.path.join(output, 'report', 'report.html'))
        say(f'done in {time.time() - started:.0f}s. The full report (sortable, filterable, '
            f'offline): {html}')
        say(f"also: report.json, report.junit.xml, report.md and the OCSF events "
            f"(report.ocsf.json) next to it; triage file {triage_file}; raw output in {out}/")
        return doc


def show_before_after(before, after):
    """Findings per policy before containment and after the re-sweep."""
    count = {}
    for label, doc in (('before', before), ('after', after)):
        for f in doc['findings']:
            count.setdefault(f['policy'], {'before': 0, 'after': 0})[label] += 1
    sys.stdout.write('\nFindings before containment and after the re-sweep:\n\n')
    sys.stdout.write('| Policy | before | after |\n|---|--:|--:|\n')
    for policy, c in sorted(count.items()):
        mark = ' (gone)' if c['before'] and not c['after'] else ''
        sys.stdout.write(f"| `{policy}` | {c['before']} | {c['after']}{mark} |\n")
    sys.stdout.write(f"| **total** | {before['summary']['findings']} | "
                     f"{after['summary']['findings']} |\n\n")
