"""`make demo` end to end, in its quick form (two regions): the real `custodian-ext demo`,
which starts its own emulator, seeds the organization, sweeps it with the stock
c7n-org and writes the report.
"""
import json
import os
import time
import xml.etree.ElementTree as ET

import pytest
import yaml

from custodian_ext_dev.demo import story
from tests.support import POLICIES, run_cli

pytestmark = pytest.mark.e2e


def demo_env():
    return {k: v for k, v in os.environ.items() if not k.startswith('AWS_')}


def policy_names(kind):
    folder = os.path.join(POLICIES, kind)
    names = set()
    if os.path.isdir(folder):
        for f in os.listdir(folder):
            if f.endswith('.yml'):
                with open(os.path.join(folder, f)) as fh:
                    names |= {p['name'] for p in yaml.safe_load(fh)['policies']}
    return names


def matches(finding, artifact):
    if finding['policy'] != artifact['policy']:
        return False
    if artifact['evidence']:
        return artifact['evidence'] in ' '.join(finding['why'])
    return finding['resource_id'] == artifact['resource']


def test_demo_report_shows_every_seeded_artifact(tmp_path):
    out = tmp_path / 'demo'
    proc = run_cli(['python', '-m', 'custodian_ext_dev.demo', '--quick', '-o', str(out)],
                   demo_env(), check=0, timeout=600)
    assert 'policy runs written' in proc.stdout  # progress while c7n-org works
    with open(out / 'report' / 'report.json') as fh:
        doc = json.load(fh)
    with open(out / 'artifacts.json') as fh:
        seeded = json.load(fh)
    compromised = seeded['compromised']
    assert sorted(seeded['accounts']) == sorted(a['name'] for a in doc['summary']['accounts'])
    assert len(seeded['accounts']) == 3

    # every seeded artifact is in the report, in the compromised account, caught by the
    # policy the story names for it
    detect = policy_names('detect')
    checked = seeded['artifacts']
    assert sorted(a['policy'] for a in checked if a['policy'] not in detect) == []
    assert all(a['resource'] for a in checked)
    mine = [f for f in doc['findings'] if f['account'] == compromised]
    missed = [a['key'] for a in checked if not any(matches(f, a) for f in mine)]
    assert missed == [], f'seeded artifacts not in the report: {missed}'
    assert len(story.ARTIFACTS) == len(seeded['artifacts'])

    # the clean, busy accounts raise nothing high or critical
    loud = [(f['account'], f['policy'], f['resource_id']) for f in doc['findings']
            if f['account'] != compromised and f['severity'] in ('critical', 'high')]
    assert loud == []
    assert doc['problems'] == [], 'no policy may error in the demo'
    assert doc['gate']['exit_code'] == 1

    # every format, the HTML self-contained and well formed, the summary printed
    assert sorted(os.listdir(out / 'report')) == [
        'report.html', 'report.json', 'report.junit.xml', 'report.md']
    html = (out / 'report' / 'report.html').read_text()
    ET.fromstring(html)
    for f in doc['findings']:
        assert f['resource_id'] in html
    with open(out / 'report' / 'report.md') as fh:
        assert fh.read() in proc.stdout
    assert str(out / 'report' / 'report.html') in proc.stdout

    # the respond policies ran with --dryrun: planned, nothing done
    assert policy_names('respond')
    statuses = {c['status'] for c in doc['contained']}
    assert statuses and statuses <= {'planned'}, statuses


def _children(pid):
    """Every descendant of ``pid`` (Linux /proc)."""
    parents = {}
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            try:
                with open(f'/proc/{entry}/stat') as fh:
                    stat = fh.read()
            except OSError:
                continue
            parents.setdefault(int(stat.rsplit(')', 1)[1].split()[1]), []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), ()):
            out.append(child)
            todo.append(child)
    return out


def _alive(pid):
    try:
        with open(f'/proc/{pid}/stat') as fh:
            return fh.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except OSError:
        return False


def _cmdline(pid):
    try:
        with open(f'/proc/{pid}/cmdline', 'rb') as fh:
            return fh.read().replace(b'\0', b' ').decode(errors='replace')
    except OSError:
        return ''


def _pgid(pid):
    try:
        return os.getpgid(pid)
    except OSError:
        return None


def _group(pgid):
    """Live (not zombie) processes of a process group."""
    out = []
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            try:
                with open(f'/proc/{entry}/stat') as fh:
                    fields = fh.read().rsplit(')', 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != 'Z':
                out.append(int(entry))
    return out


@pytest.mark.skipif(not os.path.isdir('/proc'), reason='reads the process tree from /proc')
def test_ctrl_c_during_the_sweep_stops_c7n_org_and_its_workers(account, tmp_path, monkeypatch):
    """Ctrl-C arrives while c7n-org's workers run: the whole process group is stopped."""
    from custodian_ext_dev.demo import run
    accounts = tmp_path / 'accounts.yml'
    accounts.write_text(yaml.safe_dump({
        'vars': story.demo_vars('2026-11-28T09:30:00Z'),
        'accounts': [{'name': 'a', 'account_id': account.id,
                      'role': f'arn:aws:iam::{account.id}:role/OrganizationAccountAccessRole'}]}))
    seen = {}
    real_sleep = time.sleep

    def sleep_then_interrupt(seconds):
        # the demo polls c7n-org every half second: press Ctrl-C once the workers exist
        real_sleep(0.05)
        if time.time() > seen.setdefault('deadline', time.time() + 60):
            raise AssertionError('c7n-org workers never started')
        if 'pgid' not in seen:
            # c7n-org leads its own process group; found by name, not by the highest pid
            # (pids wrap around on a busy machine)
            leaders = [p for p in _children(os.getpid()) if 'c7n-org' in _cmdline(p)
                       and _pgid(p) == p]
            if not leaders:
                return
            seen['pgid'] = leaders[0]
        members = _group(seen['pgid'])
        if len(members) > 1:
            seen['members'] = {p: _cmdline(p) for p in members}
            raise KeyboardInterrupt

    monkeypatch.setattr(run.time, 'sleep', sleep_then_interrupt)
    env = dict(account.env, C7N_ORG_PARALLEL='2')
    with pytest.raises(KeyboardInterrupt):
        run.c7n_org('sweep', str(accounts), os.path.join(POLICIES, 'detect', 'x6.yml'),
                    str(tmp_path / 'out'), ['us-east-1', 'eu-north-1', 'us-west-2'], env,
                    str(tmp_path), expected=3)
    assert len(seen['members']) > 1 and any('c7n-org' in c for c in seen['members'].values())
    assert _group(seen['pgid']) == []


def test_interrupted_demo_stops_its_emulator(tmp_path, monkeypatch):
    """Ctrl-C while seeding: the emulator process is gone when the demo returns."""
    from custodian_ext_dev.demo import run
    started = []
    real_start = run.Emulator.start

    def start(self, *a, **kw):
        started.append(self)
        return real_start(self, *a, **kw)

    def interrupted(url):
        started[0].pid = started[0].proc.pid
        raise KeyboardInterrupt

    monkeypatch.setattr(run.Emulator, 'start', start)
    monkeypatch.setattr(run.story, 'create_organization', interrupted)
    with pytest.raises(KeyboardInterrupt):
        run.run_demo(output=str(tmp_path / 'demo'), quick=True)
    assert not _alive(started[0].pid)
