"""custodian_ext.concurrency and the single flights it relies on, in-process.

The pieces are tested on their own, with threads that meet at a barrier (they can
only pass it if they run at once) rather than with timings;
tests/cli/test_performance.py runs the layer installed, in the real console
scripts, and compares findings with the layer off.
"""
import logging
import os
import threading

import boto3
import pytest
from c7n.config import Config

from custodian_ext import concurrency, runcache
from custodian_ext.errors import PackError
from custodian_ext.filters import event_history

pytestmark = pytest.mark.program(None)  # nothing installed: the wrappers are called directly

WAIT = 30  # seconds a barrier waits before the test fails (never reached when it passes)


def until(condition):
    """Wait (at most WAIT seconds) for another thread to reach a point."""
    done = threading.Event()
    for _ in range(WAIT * 100):
        if condition():
            return True
        done.wait(0.01)
    return False


@pytest.fixture(autouse=True)
def _empty():
    runcache.clear()
    yield
    runcache.clear()
    concurrency._plan['scheduler'] = None


class P:
    """What the scheduler needs of a c7n Policy."""

    def __init__(self, name, region, actions=None, mode=None, dryrun=False, resource=None):
        self.name = name
        self.options = Config.empty(region=region, account_id='111111111111', dryrun=dryrun)
        self.data = {'name': name}
        if resource:
            self.data['resource'] = resource
        if actions:
            self.data['actions'] = actions
        if mode:
            self.data['mode'] = mode


class Collection:
    def __init__(self, policies):
        self.policies = policies

    def __iter__(self):
        return iter(self.policies)


def test_custodian_run_is_ordered_region_by_region_keeping_policy_order(monkeypatch):
    monkeypatch.setenv('CUSTODIAN_EXT_THREADS', '1')  # ordering only
    collection = Collection([P('a', 'us-east-1'), P('a', 'eu-north-1'), P('b', 'us-east-1'),
                             P('b', 'eu-north-1'), P('c', 'us-east-1')])
    ordered = concurrency.region_major_plan(lambda self, c, o: c)(None, collection, None)
    assert [(p.name, p.options.region) for p in ordered.policies] == [
        ('a', 'us-east-1'), ('b', 'us-east-1'), ('c', 'us-east-1'),
        ('a', 'eu-north-1'), ('b', 'eu-north-1')]
    assert concurrency._plan['scheduler'] is None  # one thread: c7n's own loop


def test_regions_take_turns_when_started_at_once():
    ps = [P('a', 'us-east-1'), P('b', 'us-east-1'), P('c', 'us-east-1'), P('a', 'eu-north-1')]
    assert [(p.name, p.options.region) for p in concurrency.interleaved(ps)] == [
        ('a', 'us-east-1'), ('a', 'eu-north-1'), ('b', 'us-east-1'), ('c', 'us-east-1')]


def test_listings_of_different_resource_types_go_out_first():
    """Policies of one resource type share one listing: the second waits for the first's,
    holding a thread, so each type's first policy is started before any type's second."""
    data = [{'name': n, 'resource': r} for n, r in (
        ('e1', 'aws.ec2'), ('e2', 'aws.ec2'), ('e3', 'aws.ec2'), ('s1', 'aws.s3'),
        ('i1', 'aws.iam-role'), ('i2', 'aws.iam-role'))]
    spread = concurrency.spread(data, lambda p: p['resource'])
    assert [p['name'] for p in spread] == ['e1', 's1', 'i1', 'e2', 'i2', 'e3']
    # custodian run: spread within each region, regions still taking turns
    ps = [P('a', 'us-east-1', resource='aws.ec2'), P('b', 'us-east-1', resource='aws.ec2'),
          P('c', 'us-east-1', resource='aws.s3'), P('a', 'eu-north-1', resource='aws.ec2'),
          P('b', 'eu-north-1', resource='aws.ec2'), P('c', 'eu-north-1', resource='aws.s3')]
    assert [(p.name, p.options.region) for p in
            concurrency.interleaved(concurrency.spread(
                ps, lambda p: (p.options.region, p.data['resource'])))] == [
        ('a', 'us-east-1'), ('a', 'eu-north-1'), ('c', 'us-east-1'), ('c', 'eu-north-1'),
        ('b', 'us-east-1'), ('b', 'eu-north-1')]


@pytest.mark.parametrize('policy, planned', [
    (P('x', 'us-east-1'), True),                                     # detection
    (P('x', 'us-east-1', actions=['notify']), True),                 # reports only
    (P('x', 'us-east-1', actions=['stop'], dryrun=True), True),      # a dry run changes nothing
    (P('x', 'us-east-1', actions=['stop']), False),                  # acts: c7n's order
    (P('x', 'us-east-1', mode={'type': 'periodic'}), False),         # deploys a function
])
def test_only_runs_that_only_read_are_planned(policy, planned):
    assert (concurrency.plan([P('a', 'us-east-1'), policy]) is not None) is planned


def test_policies_that_read_event_history_start_first_the_others_keep_their_order():
    """CloudTrail's 2 requests/s make the event-history policies a sweep's longest: they are
    handed to the threads first (the registry knows them by the filters' ``paced``), the
    activity review (whose regions wait for the global-events region's) before the rest."""
    import custodian_ext.filters.activity  # noqa: F401  (registers the filters)
    data = [
        {'name': 'a', 'filters': [{'type': 'value', 'key': 'x', 'value': 1}]},
        {'name': 'b', 'filters': [{'or': [{'type': 'value'}, {'type': 'cloudtrail-events'}]}]},
        {'name': 'c'},
        {'name': 'd', 'filters': [{'type': 'activity'}]},
        {'name': 'e', 'filters': [{'not': [{'type': 'cloudtrail-events'}]}]},
    ]
    assert [concurrency.paced(p) for p in data] == [0, 1, 0, 2, 1]
    # each group on threads of its own: the paced ones wait, the quick ones go on
    groups = concurrency.split_paced(data, data=lambda p: p)
    assert [[p['name'] for p in g] for g in groups] == [['d', 'b', 'e'], ['a', 'c']]
    assert concurrency.split_paced(data[2:3], data=lambda p: p) == ([], data[2:3])


def test_the_activity_reviews_suspects_asked_at_once_are_read_once():
    """Three activity policies of a region run at once; the account's suspects (IAM's whole
    authorization details) are computed by one, and the others wait for it."""
    from custodian_ext.activity import review
    review.clear_cache()
    started, release, computed = threading.Event(), threading.Event(), []

    def compute():
        computed.append(1)
        started.set()
        release.wait(WAIT)
        return 'suspects'

    answers = []
    threads = [threading.Thread(target=lambda: answers.append(review.cached('seeds', compute)))
               for _ in range(3)]
    for t in threads:
        t.start()
    assert started.wait(WAIT)
    assert until(lambda: all(t.is_alive() for t in threads))
    release.set()
    for t in threads:
        t.join(WAIT)
    review.clear_cache()
    assert answers == ['suspects'] * 3 and computed == [1]


def test_threads_setting(monkeypatch):
    assert concurrency.threads('custodian', {}) == 32
    assert concurrency.threads('c7n-org', {}) == 24
    assert concurrency.threads('c7n-org', {'CUSTODIAN_EXT_THREADS': '3'}) == 3
    for bad in ('0', 'many', '1000'):
        with pytest.raises(PackError) as e:
            concurrency.threads('custodian', {'CUSTODIAN_EXT_THREADS': bad})
        assert 'CUSTODIAN_EXT_THREADS' in str(e.value) and '\n' not in str(e.value)


def test_planned_policies_run_at_once_and_c7ns_loop_gets_each_outcome_in_order(monkeypatch):
    monkeypatch.setenv('CUSTODIAN_EXT_THREADS', '4')
    policies = [P('a', 'us-east-1'), P('b', 'eu-north-1'), P('c', 'us-east-1'),
                P('boom', 'eu-north-1')]
    together = threading.Barrier(4, timeout=WAIT)
    ran_in = {}

    def original(self):
        ran_in[self.name] = threading.get_ident()
        together.wait()  # passes only when all four run at the same time
        if self.name == 'boom':
            raise RuntimeError('policy failed')
        return [self.name]

    concurrency.plan(policies)
    call = concurrency.scheduled_call(original)
    outcomes = []
    for p in policies:  # c7n's loop: for policy in policies: policy()
        try:
            outcomes.append(call(p))
        except RuntimeError as e:
            outcomes.append(str(e))
    assert outcomes == [['a'], ['b'], ['c'], 'policy failed']
    assert threading.get_ident() not in ran_in.values()
    assert concurrency._plan['scheduler'] is None  # done: the pool is gone


def test_an_unplanned_policy_runs_as_c7n_runs_it():
    concurrency.plan([P('a', 'us-east-1'), P('b', 'us-east-1')])
    other = P('other', 'us-east-1')
    call = concurrency.scheduled_call(lambda self: ['ran here', threading.get_ident()])
    assert call(other) == ['ran here', threading.get_ident()]


def config(region='us-east-1'):
    return Config.empty(account_id='111111111111', region=region)


def test_a_listing_is_made_once_while_policies_ask_for_it_at_once():
    """Inside c7n's `with cache:` block, a miss claims the key; the others wait for it."""
    listed, started = [], threading.Event()
    results = []

    def policy(first):
        cache = runcache.RunCache(config())
        with cache:
            found = cache.get({'resource': 'ec2'})
            if found is None:
                listed.append(1)
                started.set()
                if first:
                    # the other policy asks now, and must wait for this listing
                    waiter.start()
                    until(lambda: runcache._waiting)
                cache.save({'resource': 'ec2'}, [{'InstanceId': 'i-1'}])
                found = [{'InstanceId': 'i-1'}]
        results.append(found)

    waiter = threading.Thread(target=policy, args=(False,))
    policy(True)
    waiter.join(WAIT)
    assert listed == [1] and results == [[{'InstanceId': 'i-1'}]] * 2


def test_a_listing_that_failed_is_made_again_by_the_next_policy():
    failing = runcache.RunCache(config())
    got = []

    def other():
        cache = runcache.RunCache(config())
        with cache:
            got.append(cache.get('k'))  # waits for the failed claim to end, then lists

    t = threading.Thread(target=other)
    with pytest.raises(RuntimeError):
        with failing:
            assert failing.get('k') is None  # claimed
            t.start()
            assert until(lambda: runcache._waiting)
            raise RuntimeError('listing failed')
    t.join(WAIT)
    assert got == [None] and not t.is_alive()


def test_account_regions_running_at_once_keep_their_own_entries():
    runcache.set_concurrent(True)
    try:
        east, west = runcache.RunCache(config('us-east-1')), runcache.RunCache(config('us-west-2'))
        east.save('k', ['east'])
        west.save('k', ['west'])
        assert east.get('k') == ['east'] and west.get('k') == ['west']
        runcache.drop(runcache.scope_of(config('us-east-1')))
        assert east.get('k') is None and west.get('k') == ['west']
    finally:
        runcache.set_concurrent(False)


def _client(service):
    return boto3.Session(aws_access_key_id='AKIAEXAMPLE1', aws_secret_access_key='x',
                         region_name='us-east-1').client(service, endpoint_url='http://127.0.0.1:9')


def test_a_shared_read_asked_at_once_is_made_once():
    trails = _client('cloudtrail')
    together = threading.Barrier(2, timeout=WAIT)
    made, answers = [], []

    def call():
        made.append(1)
        until(lambda: runcache._waiting)  # the other thread waits for this answer
        return {'trailList': []}

    def policy():
        together.wait()
        answers.append(runcache.shared_read(trails, 'DescribeTrails', {}, call))

    threads = [threading.Thread(target=policy) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT)
    assert made == [1] and answers == [{'trailList': []}] * 2


def test_cloudtrail_history_asked_at_once_is_read_once(monkeypatch):
    event_history.clear_cache()
    made, asked = [], threading.Event()

    class Reading(dict):
        # a second policy finds the read under way (and will wait for it)
        def get(self, key, default=None):
            found = super().get(key, default)
            if found is not None:
                asked.set()
            return found

    monkeypatch.setattr(event_history, '_reading', Reading())

    def lookup(client, retry, key, attribute, start, end, max_pages, early=False):
        made.append(attribute)
        asked.wait(WAIT)
        return ['event'], False

    monkeypatch.setattr(event_history, 'lookup', lookup)
    import datetime
    start = datetime.datetime(2026, 11, 28, tzinfo=datetime.timezone.utc)
    attr = {'AttributeKey': 'ReadOnly', 'AttributeValue': 'false'}
    got = []
    together = threading.Barrier(2, timeout=WAIT)

    def policy():
        together.wait()
        got.append(event_history.cached_lookup(None, None, ('1', 'us-east-1'), attr, start,
                                               start, 20))

    threads = [threading.Thread(target=policy) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT)
    event_history.clear_cache()
    assert asked.is_set() and made == [attr] and got == [(['event'], False)] * 2


def test_lookups_sent_late_still_go_out_half_a_second_apart(monkeypatch):
    """A lookup planned for its slot but sent late (its thread waited for the CPU) pushes
    the next one back: AWS counts requests as they arrive."""
    now, sleeps = [100.0], []
    monkeypatch.setattr(event_history, 'clock', lambda: now[0])

    def sleep(s):
        sleeps.append(round(s, 3))
        now[0] += s
    monkeypatch.setattr(event_history, 'sleep', sleep)
    limiter = event_history.RateLimiter(0.5)
    key = ('1', 'us-east-1')
    limiter.wait(key)            # slot 100.0
    limiter.wait(key)            # slot 100.5
    now[0] += 0.4                # ...but the first request only goes out at 100.9
    limiter.sending(key)
    limiter.sending(key)         # the second, due at 100.5, waits until 101.4
    assert sleeps == [0.5, 0.5] and now[0] == pytest.approx(101.4)


def test_the_environment_of_overlapping_runs_is_set_once_and_restored_once(monkeypatch):
    monkeypatch.delenv('AccountName', raising=False)
    calls = []
    import contextlib

    @contextlib.contextmanager
    def environ(**kw):  # c7n-org's: set, then delete on exit
        calls.append('enter')
        os.environ.update(kw)
        try:
            yield os.environ
        finally:
            for k in kw:
                del os.environ[k]
            calls.append('exit')

    shared = concurrency.shared_environ(environ)
    first, second = shared(AccountName='prod'), shared(AccountName='prod')
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    assert os.environ.get('AccountName') == 'prod'  # the second run still has it
    second.__exit__(None, None, None)
    assert 'AccountName' not in os.environ and calls == ['enter', 'exit']


def test_a_run_starting_while_the_last_one_restores_the_environment_gets_it_set(monkeypatch):
    """The last run's exit deletes the variables; a run entering meanwhile must not lose
    them (c7n-org's exit would then fail with KeyError: 'AccountName')."""
    monkeypatch.delenv('AccountName', raising=False)
    import contextlib
    exiting, proceed = threading.Event(), threading.Event()

    @contextlib.contextmanager
    def environ(**kw):
        os.environ.update(kw)
        try:
            yield os.environ
        finally:
            exiting.set()
            proceed.wait(WAIT)
            for k in kw:
                del os.environ[k]

    shared = concurrency.shared_environ(environ)
    seen = []

    def first():
        with shared(AccountName='prod'):
            pass

    def second():
        with shared(AccountName='prod'):
            a.join(WAIT)  # the first run's exit has finished
            seen.append(os.environ.get('AccountName'))

    a = threading.Thread(target=first)
    a.start()
    assert exiting.wait(WAIT)  # the first run is restoring the environment
    b = threading.Thread(target=second)
    b.start()
    proceed.set()
    b.join(WAIT)
    assert seen == ['prod'] and 'AccountName' not in os.environ


def test_a_policys_log_file_takes_its_own_threads_lines(tmp_path):
    log = logging.getLogger('custodian.test-concurrency')
    handlers = {}
    ready = threading.Barrier(2, timeout=WAIT)
    written = threading.Barrier(2, timeout=WAIT)

    def policy(name):
        concurrency.runner(name)
        try:
            handler = logging.FileHandler(tmp_path / f'{name}.log')
            handler.addFilter(concurrency.OwnThread(threading.get_ident()))
            logging.getLogger('custodian').addHandler(handler)
            handlers[name] = handler
            ready.wait()
            log.warning('from %s', name)
            written.wait()
        finally:
            concurrency.runner_done()

    threads = [threading.Thread(target=policy, args=(n,)) for n in ('a', 'b')]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT)
    log.warning('from a thread that runs no policy')  # c7n's own workers: to every policy
    for h in handlers.values():
        logging.getLogger('custodian').removeHandler(h)
        h.close()
    for name in ('a', 'b'):
        lines = (tmp_path / f'{name}.log').read_text().splitlines()
        assert lines == [f'from {name}', 'from a thread that runs no policy']


def test_c7n_org_runs_an_account_regions_policies_at_once_one_run_account_each(monkeypatch):
    monkeypatch.setenv('CUSTODIAN_EXT_THREADS', '3')
    policies = [{'name': n, 'resource': 'aws.ec2'} for n in ('a', 'b', 'c')]
    together = threading.Barrier(3, timeout=WAIT)
    seen = []

    def run_account(account, region, policies_config, *args):
        names = [p['name'] for p in policies_config['policies']]
        seen.append(names)
        together.wait()
        return {names[0]: 1}, names[0] != 'c'

    wrapped = concurrency.concurrent_run_account(run_account)
    counts, success = wrapped({'name': 'prod'}, 'us-east-1', {'policies': policies},
                              'out', 0, None, False, False, False)
    assert sorted(seen) == [['a'], ['b'], ['c']]
    assert counts == {'a': 1, 'b': 1, 'c': 1} and success is False


def test_c7n_org_keeps_its_order_when_a_policy_acts(monkeypatch):
    policies = [{'name': 'a', 'resource': 'aws.ec2'},
                {'name': 'b', 'resource': 'aws.ec2', 'actions': ['stop']}]
    seen = []

    def run_account(account, region, policies_config, *args):
        seen.append([p['name'] for p in policies_config['policies']])
        return {}, True

    concurrency.concurrent_run_account(run_account)(
        {'name': 'prod'}, 'us-east-1', {'policies': policies}, 'out', 0, None, False, False,
        False)
    assert seen == [['a', 'b']]  # one run_account, c7n-org's loop


def test_an_account_whose_role_cannot_be_assumed_is_left_to_c7n_orgs_loop(monkeypatch):
    """c7n-org stops an account-region at its first policy when the role is refused; tried
    once per policy on threads, it would be refused once per policy instead."""
    from botocore.exceptions import ClientError
    from c7n.credentials import SessionFactory

    def refused(self, assume=True, region=None):
        raise ClientError({'Error': {'Code': 'AccessDenied', 'Message': 'no'}}, 'AssumeRole')

    monkeypatch.setattr(SessionFactory, '__call__', refused)
    seen = []

    def run_account(account, region, policies_config, *args):
        seen.append([p['name'] for p in policies_config['policies']])
        return {}, False

    account = {'name': 'broken', 'account_id': '111111111111',
               'role': 'arn:aws:iam::111111111111:role/Audit'}
    policies = [{'name': n, 'resource': 'aws.ec2'} for n in ('a', 'b', 'c')]
    concurrency.concurrent_run_account(run_account)(
        account, 'us-east-1', {'policies': policies}, 'out', 0, None, False, False, False)
    assert seen == [['a', 'b', 'c']]
