"""custodian_ext.org_order: c7n-org's jobs started each account's global region first.

The end-to-end check (the real c7n-org at latency starts every account's us-east-1
before any other region) is in tests/cli/test_performance.py.
"""
import os
import threading
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, as_completed

import pytest

import custodian_ext.org_order as org_order


def accounts(*specs):
    return [dict(name=name, account_id=f'{i:012d}', **({'vars': {'global_region': g}} if g else {}))
            for i, (name, g) in enumerate(specs)]


def global_region(account):
    return (account.get('vars') or {}).get('global_region') or 'us-east-1'


def test_global_regions_first_then_account_by_account():
    a, b, c = accounts(('a', None), ('b', 'eu-west-1'), ('c', None))
    regions = ['eu-west-1', 'us-east-1', 'us-west-2']
    jobs = [(x, r) for x in (a, b, c) for r in regions]  # c7n-org's order
    order = [(jobs[i][0]['name'], jobs[i][1]) for i in org_order.job_order(jobs, global_region)]
    assert order == [
        ('a', 'us-east-1'), ('b', 'eu-west-1'), ('c', 'us-east-1'),
        ('a', 'eu-west-1'), ('a', 'us-west-2'),
        ('b', 'us-east-1'), ('b', 'us-west-2'),
        ('c', 'eu-west-1'), ('c', 'us-west-2')]


def test_an_account_without_its_global_region_keeps_its_place():
    a, b = accounts(('a', None), ('b', None))
    jobs = [(a, 'us-east-1'), (a, 'us-west-2'), (b, 'eu-west-1'), (b, 'us-west-2')]
    order = org_order.job_order(jobs, global_region)
    assert order == [0, 1, 2, 3]


def job(account, region, log, fail=()):
    log.append((account['name'], region))
    if (account['name'], region) in fail:
        raise RuntimeError(f"{account['name']} {region} failed")
    return {'ran': (account['name'], region)}


def submit_all(pool, jobs, log, fail=()):
    return {pool.submit(job, a, r, log, fail): (a['name'], r) for a, r in jobs}


def one_thread(max_workers):
    return ThreadPoolExecutor(max_workers=1)


def test_jobs_leave_in_order_and_each_future_gets_its_own_result():
    a, b = accounts(('a', None), ('b', None))
    jobs = [(x, r) for x in (a, b) for r in ('us-west-2', 'us-east-1')]
    log = []
    executor = org_order.ordered(one_thread, len(jobs), global_region)
    with executor(max_workers=4) as pool:
        futures = submit_all(pool, jobs[:-1], log, fail={('b', 'us-west-2')})
        assert log == [] and not any(f.done() for f in futures)  # held...
        futures.update(submit_all(pool, jobs[-1:], log))  # ...until the last one arrives
        for f in as_completed(futures, timeout=10):
            if futures[f] == ('b', 'us-west-2'):
                assert str(f.exception()) == 'b us-west-2 failed'
            else:
                assert f.result() == {'ran': futures[f]}
    assert log == [('a', 'us-east-1'), ('b', 'us-east-1'), ('a', 'us-west-2'), ('b', 'us-west-2')]


def test_fewer_jobs_than_expected_still_run(monkeypatch):
    """A loop that submits fewer jobs than planned (or pauses) loses the order, never a job."""
    monkeypatch.setattr(org_order, 'RELEASE_AFTER', 0.05)
    a, = accounts(('a', None))
    log = []
    executor = org_order.ordered(one_thread, 10, global_region)
    with executor(max_workers=2) as pool:
        futures = submit_all(pool, [(a, 'us-west-2'), (a, 'us-east-1')], log)
        done = list(as_completed(futures, timeout=10))  # released by the timer
        assert len(done) == 2
        late = pool.submit(job, a, 'eu-west-1', log)  # after a release: goes at once
        assert late.result(timeout=10) == {'ran': ('a', 'eu-west-1')}
    assert log == [('a', 'us-east-1'), ('a', 'us-west-2'), ('a', 'eu-west-1')]


def test_leaving_the_pool_runs_what_is_held(monkeypatch):
    monkeypatch.setattr(org_order, 'RELEASE_AFTER', 3600)
    a, = accounts(('a', None))
    log = []
    executor = org_order.ordered(one_thread, 5, global_region)
    with executor(max_workers=2) as pool:
        futures = submit_all(pool, [(a, 'us-west-2'), (a, 'us-east-1')], log)
    assert all(f.done() for f in futures)
    assert log == [('a', 'us-east-1'), ('a', 'us-west-2')]


def worker_job(account, region):
    return (account['name'], region, os.getpid())


def test_with_c7n_orgs_process_pool():
    a, b = accounts(('a', None), ('b', None))
    jobs = [(x, r) for x in (a, b) for r in ('us-west-2', 'us-east-1')]
    executor = org_order.ordered(ProcessPoolExecutor, len(jobs), global_region)
    with executor(max_workers=2) as pool:
        futures = {pool.submit(worker_job, x, r): (x['name'], r) for x, r in jobs}
        results = {futures[f]: f.result(timeout=60) for f in as_completed(futures, timeout=60)}
    assert {k: v[:2] for k, v in results.items()} == {k: k for k in futures.values()}
    assert all(pid != os.getpid() for *_, pid in results.values())


def test_regions_resolved_once_beforehand_and_errors_raised_where_c7n_org_meets_them():
    a, b, c = accounts(('a', None), ('b', None), ('c', None))
    asked = []
    lock = threading.Lock()

    def resolve(regions, account):
        with lock:
            asked.append((account['name'], tuple(regions)))
        if account['name'] == 'b':
            raise RuntimeError('DescribeRegions failed')
        return ['us-east-1', 'eu-west-1'] if 'all' in regions else list(regions)

    patched = org_order.resolved_regions(resolve)
    expected = org_order.prepare([a, b], ('all',), patched)
    assert expected == 2  # the two regions of a; b's error counts no job
    assert sorted(asked) == [('a', ('all',)), ('b', ('all',))]
    assert patched(('all',), a) == ['us-east-1', 'eu-west-1']
    with pytest.raises(RuntimeError, match='DescribeRegions failed'):
        patched(('all',), b)
    assert len(asked) == 2  # answered from what prepare read
    # an account prepare did not see, or a second question, goes to c7n-org's own
    assert patched(['us-west-2'], c) == ['us-west-2']
    assert patched(('all',), a) == ['us-east-1', 'eu-west-1']
    assert asked[2:] == [('c', ('us-west-2',)), ('a', ('all',))]


def test_account_regions_used_when_the_command_line_names_none():
    a, = accounts(('a', None))
    a['regions'] = ['eu-west-1', 'us-east-1']
    patched = org_order.resolved_regions(lambda regions, account: list(regions))
    assert org_order.prepare([a], (), patched) == 2
    assert patched(a.get('regions', ()), a) == ['eu-west-1', 'us-east-1']


def test_a_share_of_the_workers_keeps_on_with_the_global_regions():
    """Global regions first while nothing else is ready; then the regions of the accounts
    whose global region finished, account by account, while the global regions left keep
    their share of the workers (their work left over all work left), never all of them."""
    a, b, c, d = accounts(('a', None), ('b', None), ('c', None), ('d', None))
    regions = ['us-east-1', 'eu-west-1', 'us-west-2', 'ap-south-1']
    jobs = [(x, r) for x in (a, b, c, d) for r in regions]
    schedule = org_order.Schedule(list(jobs), global_region, slots=2)

    def name(i):
        return jobs[i][0]['name'], jobs[i][1]
    first, second = schedule.next(), schedule.next()
    assert [name(first), name(second)] == [('a', 'us-east-1'), ('b', 'us-east-1')]
    schedule.finished(first, 10.0)  # a's events are read: its regions are ready
    # share: 2 global regions left of 14 jobs (same weight until each kind has a mean): 1
    # worker, held by b's: a's region goes
    third = schedule.next()
    assert name(third) == ('a', 'eu-west-1')
    schedule.finished(third, 1.0)  # means now 10 s and 1 s: ceil(2 * 20 / 31) = 2
    assert name(schedule.next()) == ('c', 'us-east-1')
    schedule.finished(second, 10.0)  # b's done; c's runs: share ceil(2 * 10 / 22) = 1
    order = [name(schedule.next())]
    assert order == [('a', 'us-west-2')]  # a's events were read first: a's regions first
    while schedule:
        order.append(name(schedule.next()))
    # d's global region, the last, goes once its share passes the one running (c's):
    # ceil(2 * 10 / (10 + 9)) = 2 after a's last region; then b's regions (b's events
    # were read), and c's and d's (not finished here) in c7n-org's order
    assert order == [('a', 'us-west-2'), ('a', 'ap-south-1'), ('d', 'us-east-1'),
                     ('b', 'eu-west-1'), ('b', 'us-west-2'), ('b', 'ap-south-1'),
                     ('c', 'eu-west-1'), ('c', 'us-west-2'), ('c', 'ap-south-1'),
                     ('d', 'eu-west-1'), ('d', 'us-west-2'), ('d', 'ap-south-1')]
    assert sorted(order + [name(first), name(second), name(third), ('c', 'us-east-1')]) == \
        sorted(name(i) for i in range(len(jobs)))


def test_workers_never_all_wait_on_global_regions_once_others_are_ready():
    """Through the pool: with 2 workers and 4 accounts, the last two accounts' global
    regions run beside the first accounts' other regions (their share of the work left
    is under half); all global regions first had both workers wait on c's and d's after
    a's and b's."""
    a, b, c, d = accounts(('a', None), ('b', None), ('c', None), ('d', None))
    jobs = [(x, r) for x in (a, b, c, d)
            for r in ('us-east-1', 'eu-west-1', 'us-west-2', 'ap-south-1', 'eu-north-1')]
    running, seen, lock = set(), [], threading.Lock()

    def slow(account, region):
        with lock:
            running.add((account['name'], region))
            seen.append(frozenset(running))
        threading.Event().wait(0.1 if region == 'us-east-1' else 0.06)
        with lock:
            running.discard((account['name'], region))
        return region

    executor = org_order.ordered(ThreadPoolExecutor, len(jobs), global_region)
    with executor(max_workers=2) as pool:
        futures = [pool.submit(slow, x, r) for x, r in jobs]
        assert [f.result(timeout=10) for f in futures] == [r for _, r in jobs]
    assert max(len(s) for s in seen) <= 2  # never more than the workers at once
    both_global = [s for s in seen if len(s) == 2 and all(r == 'us-east-1' for _, r in s)]
    assert both_global == [frozenset({('a', 'us-east-1'), ('b', 'us-east-1')})]


def test_a_fault_in_the_order_leaves_the_jobs_in_theirs(monkeypatch):
    """Should the schedule fail (a bug), the jobs left still run, each once, in the order
    they arrived: c7n-org's loop waits for every future, so one never started would hang
    the sweep."""
    a, b = accounts(('a', None), ('b', None))
    jobs = [(x, r) for x in (a, b) for r in ('us-west-2', 'us-east-1', 'eu-west-1')]
    calls = {'n': 0}
    real = org_order.Schedule.next

    def failing(self):
        calls['n'] += 1
        if calls['n'] == 2:
            raise RuntimeError('a bug')
        return real(self)
    monkeypatch.setattr(org_order.Schedule, 'next', failing)
    log = []
    executor = org_order.ordered(one_thread, len(jobs), global_region)
    with executor(max_workers=1) as pool:
        futures = submit_all(pool, jobs, log)
        results = {futures[f]: f.result(timeout=10) for f in as_completed(futures, timeout=10)}
    assert results == {k: {'ran': k} for k in futures.values()}
    # a's global region first (the schedule's one pick), then the rest as they arrived
    assert log == [('a', 'us-east-1'), ('a', 'us-west-2'), ('a', 'eu-west-1'),
                   ('b', 'us-west-2'), ('b', 'us-east-1'), ('b', 'eu-west-1')]
