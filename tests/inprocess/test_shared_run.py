"""c7n-org's worker processes share CloudTrail's rate limit and lookups per account-region."""
import itertools
import multiprocessing
import os
import time

import pytest

import custodian_ext.shared_run as shared_run
from custodian_ext.filters import event_history

pytestmark = pytest.mark.skipif(shared_run.fcntl is None, reason='no fcntl on this platform')
KEY = ('111122223333', 'us-east-1')


@pytest.fixture
def run_dir(tmp_path, monkeypatch):
    path = tmp_path / 'run'
    path.mkdir(mode=0o700)
    monkeypatch.setenv(shared_run.ENV, str(path))
    return str(path)


def _send(n, out):
    # a fresh limiter, as in a worker process of its own
    limiter = event_history.RateLimiter(event_history.MIN_INTERVAL)
    for _ in range(n):
        limiter.sending(KEY)
        out.put(time.monotonic())


def test_two_processes_keep_two_requests_per_second_between_them(run_dir):
    ctx = multiprocessing.get_context('fork')
    out = ctx.Queue()
    workers = [ctx.Process(target=_send, args=(4, out)) for _ in range(2)]
    for w in workers:
        w.start()
    times = sorted(out.get(timeout=30) for _ in range(8))
    for w in workers:
        w.join(30)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= event_history.MIN_INTERVAL - 0.01
    # and not serialised beyond the limit: 8 requests in about 3.5 s
    assert times[-1] - times[0] < 8 * event_history.MIN_INTERVAL


def test_without_the_run_folder_each_process_keeps_its_own(monkeypatch):
    monkeypatch.delenv(shared_run.ENV, raising=False)
    assert shared_run.directory() is None
    limiter = event_history.RateLimiter(event_history.MIN_INTERVAL)
    assert limiter._across_processes(KEY, 5.0) == 5.0


def _lookup_once(counter_path, out):
    def lookup(client, retry, key, attribute, start, end, max_pages, early=False):
        with open(counter_path, 'a') as fh:
            fh.write('x')
        time.sleep(0.3)  # the other process arrives while this one reads
        return [{'EventId': 'e1'}], False
    event_history.lookup = lookup
    out.put(event_history.shared_lookup(None, None, KEY, {'AttributeKey': 'EventName',
                                                          'AttributeValue': 'GetSecretValue'},
                                        None, None, 20, KEY + ('GetSecretValue',)))


def test_a_lookup_wanted_by_two_processes_is_made_once(run_dir, tmp_path):
    counter = str(tmp_path / 'made')
    ctx = multiprocessing.get_context('fork')
    out = ctx.Queue()
    workers = [ctx.Process(target=_lookup_once, args=(counter, out)) for _ in range(3)]
    for w in workers:
        w.start()
    answers = [out.get(timeout=30) for _ in range(3)]
    for w in workers:
        w.join(30)
    assert answers == [([{'EventId': 'e1'}], False)] * 3
    with open(counter) as fh:
        assert fh.read() == 'x'


def test_a_stale_answer_is_read_again(run_dir, monkeypatch):
    shared_run.store(run_dir, 'k', 'old')
    assert shared_run.load(run_dir, 'k', 60) == 'old'
    real = time.time
    monkeypatch.setattr(time, 'time', lambda: real() + 61)
    assert shared_run.load(run_dir, 'k', 60) is None


def test_the_parent_removes_the_folder_and_a_worker_does_not(monkeypatch):
    monkeypatch.delenv(shared_run.ENV, raising=False)
    registered = []
    monkeypatch.setattr(shared_run.atexit, 'register', registered.append)
    path = shared_run.start()
    assert os.path.isdir(path) and oct(os.stat(path).st_mode & 0o777) == '0o700'
    assert shared_run.start() == path  # once per run
    real_pid = os.getpid()
    monkeypatch.setattr(os, 'getpid', lambda: real_pid + 1)
    registered[0]()
    assert os.path.isdir(path)
    monkeypatch.setattr(os, 'getpid', lambda: real_pid)
    registered[0]()
    assert not os.path.exists(path) and shared_run.ENV not in os.environ
