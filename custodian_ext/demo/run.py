"""Run the demo: start the emulator, seed the incident, sweep it, print the findings.

No AWS account or credentials are needed or used: the emulator runs on a
loopback port, and every child process gets fake credentials and that
endpoint only.
"""
import os
import shutil
import subprocess
import sys
import time

import yaml

from custodian_ext import paths
from custodian_ext.demo import story
from custodian_ext.emulator import Emulator
from custodian_ext.report import load_runs
from custodian_ext.report.text import render_text


def say(msg):
    sys.stdout.write(f"[demo {time.strftime('%H:%M:%S')}] {msg}\n")
    sys.stdout.flush()


def custodian_bin(name):
    """The console script next to this interpreter (the pack's venv)."""
    candidate = os.path.join(os.path.dirname(sys.executable), name)
    return candidate if os.path.exists(candidate) else shutil.which(name) or name


def run_demo(output='demo-output', policies=None):
    policies = policies or paths.policies_dir('detect')
    if os.path.exists(output):
        shutil.rmtree(output)
    os.makedirs(output)
    out_dir = os.path.join(output, 'out')
    started = time.time()
    say('starting the local AWS emulator (moto) on a loopback port')
    with Emulator(log_file=os.path.join(output, 'emulator.log')) as emu:
        say(f'emulator at {emu.url}; seeding the account as it was before the incident')
        story.seed_baseline(emu.url)
        incident_start = story.incident_boundary()
        say(f'incident starts {incident_start}; seeding what the attacker did')
        story.seed_attack(emu.url)
        vars_file = os.path.join(output, 'vars.yml')
        with open(vars_file, 'w') as fh:
            yaml.safe_dump(story.demo_vars(incident_start), fh, sort_keys=False)
        cmd = [custodian_bin('custodian'), 'run', '-s', out_dir, '--cache-period', '0',
               '--vars-file', vars_file, policies]
        for r in story.SWEEP_REGIONS:
            cmd += ['-r', r]
        say('sweeping with the stock custodian command: ' + ' '.join(cmd[1:]))
        proc = subprocess.run(cmd, env=emu.env(), capture_output=True, text=True)
        with open(os.path.join(output, 'custodian.log'), 'w') as fh:
            fh.write(proc.stderr)
        if proc.returncode not in (0, 2):  # 2: some policy errored; the report shows which
            sys.stderr.write(proc.stderr[-2000:])
            raise SystemExit(f'demo: custodian run failed (exit {proc.returncode})')
    runs = load_runs([out_dir])
    say(f'done in {time.time() - started:.0f}s; findings by runbook step:')
    sys.stdout.write('\n' + render_text(runs))
    say(f'raw output: {out_dir}/  (custodian log: {output}/custodian.log)')
    return runs
