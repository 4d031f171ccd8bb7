"""Policies run at once while their calls wait on the network (the performance layer).

At real AWS latency a sweep spends its time waiting: every call takes tens to
hundreds of milliseconds, and c7n runs the policies of an account-region one after
another, and ``custodian run`` its regions one after another. The detect pack's
policies only read, so nothing orders them but c7n's loop. Here, in the
``custodian`` and ``c7n-org`` programs, they run on ``CUSTODIAN_EXT_THREADS``
threads per process (default 32 in ``custodian run``, 24 in each c7n-org worker; 1
switches this off):

- ``custodian run``: every policy of every region is started at once, regions
  interleaved, and c7n's loop is handed each policy's outcome (its resources, or
  its exception) in its own order, so its error handling and exit status are
  c7n's. The run cache holds each region until its last policy ends. The regions
  may first be shared out between processes (``custodian_ext.region_processes``).
- ``c7n-org``: each worker runs the policies of its account-region on the
  threads, one c7n-org ``run_account`` per policy (same output, same log lines),
  sharing one set of account tags in the environment, one assumed role and its clients.

Policies of one account-region share their listings through the run cache, which
makes a policy wait for a listing another policy is already making rather than
make it again (``custodian_ext.runcache``); so do the shared reads and the
CloudTrail event history (``custodian_ext.filters.event_history``), whose 2
requests per second per account-region are kept across threads.

What each policy writes is unchanged: its own output folder, and its own
``custodian-run.log`` (a policy's log file takes the lines of its own thread,
and of threads that run no policy, as before). Runs where a policy acts (has
actions and no ``--dryrun``) keep c7n's order: an action may change what a
later policy reads. c7n-org stops an account-region at the first policy denied
access; here the policies already started finish (their results are kept, and
the denied one is reported as before); an account whose role cannot be assumed at
all is left to c7n-org's loop, as before. ``CUSTODIAN_EXT_PERF=0`` switches this
off with the rest of the layer.
"""
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed

import custodian_ext.lifetime as lifetime
import custodian_ext.region_processes as region_processes
import custodian_ext.runcache as runcache
from custodian_ext.errors import count_setting
from custodian_ext.report.model import REPORTING_ACTIONS

THREADS_ENV = 'CUSTODIAN_EXT_THREADS'
# custodian run has every region's policies to run; a c7n-org worker one account-region's,
# beside C7N_ORG_PARALLEL - 1 other workers (24 against 8 and 32: docs/performance.md)
DEFAULT_THREADS = {'custodian': 32, 'c7n-org': 24}
MAX_THREADS = 64

_lock = threading.Lock()
_runners = {}        # thread ident -> policy name, while a thread runs a policy
_conductors = set()  # threads waiting for the policies they started
_plan = {'scheduler': None}


def threads(program='custodian', environ=None):
    """Threads per process that run policies (CUSTODIAN_EXT_THREADS)."""
    return count_setting(os.environ if environ is None else environ, THREADS_ENV,
                         DEFAULT_THREADS[program], MAX_THREADS,
                         'the number of policies to run at once per process, 1 (one after '
                         'another)')


def acts(policy_data, dryrun):
    """The policy changes something: actions beyond notifications, and no --dryrun."""
    if dryrun:
        return False
    for a in policy_data.get('actions') or ():
        kind = a if isinstance(a, str) else a.get('type')
        if kind not in REPORTING_ACTIONS:
            return True
    return False


def paced(policy_data):
    """The policy's pace rank: 0, or the highest ``paced`` rank of the filters it uses that
    read CloudTrail event history (2 requests/s per account-region): the longest waits of a
    sweep, so such policies start first, the longest chain (highest rank) first."""
    from custodian_ext.registry import PACED_FILTERS

    def walk(filters):
        rank = 0
        for f in filters or ():
            if isinstance(f, dict):
                rank = max(rank, PACED_FILTERS.get(f.get('type'), 0))
                for nested in ('or', 'and', 'not'):
                    rank = max(rank, walk(f.get(nested)))
        return rank
    return walk(policy_data.get('filters'))


def split_paced(policies, data=lambda p: p.data):
    """(policies that read event history, the others), each in their order, the first by
    pace rank, highest first. Each group gets threads of its own: the paced policies spend
    most of their time waiting for CloudTrail's pacing, and would otherwise hold every
    thread while the quick listings of the same sweep queue behind them."""
    ranked, others = [], []
    for p in policies:
        rank = paced(data(p))
        if rank:
            ranked.append((-rank, len(ranked), p))
        else:
            others.append(p)
    return [p for *_, p in sorted(ranked, key=lambda r: r[:2])], others


def taking_turns(items, key):
    """The first item of each ``key(item)``, then the second of each...: each key's order
    kept."""
    by_key = {}
    for item in items:
        by_key.setdefault(key(item), []).append(item)
    out, depth = [], max((len(v) for v in by_key.values()), default=0)
    for i in range(depth):
        for group in by_key.values():
            if i < len(group):
                out.append(group[i])
    return out


def spread(policies, listing):
    """The first policy of each listing (``listing(p)``: its resource type, in its
    account-region), then the second of each...: each listing's order kept.

    Policies of one listing share it (the run cache): the first lists, and the others
    hold a thread each while they wait for it; in file order, the listings of the
    other types would go out in later waves, a round trip apart."""
    return taking_turns(policies, listing)


def pull(policy_data):
    return ((policy_data.get('mode') or {}).get('type') or 'pull') == 'pull'


def runner(name):
    """Mark this thread as running ``name`` (its log lines go to that policy's log only)."""
    with _lock:
        _runners[threading.get_ident()] = name


def runner_done():
    with _lock:
        _runners.pop(threading.get_ident(), None)


def conducting(on):
    """This thread waits for policies it started: its log lines belong to none of them."""
    with _lock:
        if on:
            _conductors.add(threading.get_ident())
        else:
            _conductors.discard(threading.get_ident())


def reset():
    """Forget a planned run (the patches were undone)."""
    scheduler = _plan['scheduler']
    if scheduler is not None:
        scheduler.finish(cancel=True)
    _plan['scheduler'] = None


# -- custodian run -----------------------------------------------------------------

def interleaved(policies):
    """Region by region in turn: the first policy of each region, then the second..."""
    return taking_turns(policies, lambda p: p.options.region)


class Scheduler:
    """Runs a custodian run's policies on threads; hands c7n's loop each outcome in turn."""

    def __init__(self, policies, n):
        self.policies = list(policies)
        self.planned = {id(p) for p in self.policies}
        self.n = n
        self.futures = None
        self.pools = []
        self.left = {}  # scope -> policies not yet finished

    def start(self, call):
        # other processes take a share of the regions first: a fork copies one thread
        mine, self.futures = region_processes.fork(
            self.policies, lambda share: self._as_completed(call, share))
        runcache.set_concurrent(True)
        conducting(True)
        self._launch(call, mine)

    def _launch(self, call, policies):
        for p in policies:
            scope = runcache.scope_of(p.options)
            self.left[scope] = self.left.get(scope, 0) + 1
        # The paced policies region by region (highest rank first): every one of them starts
        # at once, so that their reviews of the global-events region begin together; one
        # policy in every region first would hold all threads waiting for its own review.
        # The quick ones with regions interleaved, spreading each region's rate limits,
        # and each region's listings spread over its resource types.
        paced_group, others = split_paced(policies)
        others = interleaved(spread(
            others, lambda p: (p.options.region, p.data.get('resource'))))
        for group in [g for g in (paced_group, others) if g]:
            pool = ThreadPoolExecutor(max_workers=min(self.n, len(group)),
                                      thread_name_prefix='custodian-ext-policy')
            self.pools.append(pool)
            for p in group:
                self.futures[id(p)] = pool.submit(self._run, call, p)

    def _as_completed(self, call, policies):
        """(policy, its exception or None) for each of ``policies`` as it ends: the share of
        a forked process (custodian_ext.region_processes)."""
        runcache.set_concurrent(True)
        conducting(True)
        self.futures = {}
        self._launch(call, policies)
        policy_of = {self.futures[id(p)]: p for p in policies}
        try:
            for future in as_completed(policy_of):
                yield policy_of[future], future.exception()
        finally:
            self.finish(cancel=True)

    def _run(self, call, policy):
        runner(policy.name)
        try:
            return call(policy)
        finally:
            runner_done()
            scope = runcache.scope_of(policy.options)
            with _lock:
                self.left[scope] -= 1
                done = self.left[scope] == 0
            if done:
                runcache.drop(scope)

    def outcome(self, policy, call):
        if self.futures is None:
            self.start(call)
        future = self.futures.pop(id(policy))
        try:
            return future.result()
        except region_processes.RegionProcessLost as e:
            region_processes.record_lost(policy, e)
            raise
        except BaseException as e:
            if not isinstance(e, Exception):  # KeyboardInterrupt: start nothing more
                self.finish(cancel=True)
            raise
        finally:
            if not self.futures:
                self.finish()

    def finish(self, cancel=False):
        if cancel:
            region_processes.end_others()
        if self.pools:
            pools, self.pools = self.pools, []
            for pool in pools:
                pool.shutdown(wait=not cancel, cancel_futures=cancel)
            runcache.set_concurrent(False)
            conducting(False)
        if _plan['scheduler'] is self:
            _plan['scheduler'] = None


def plan(policies):
    """``custodian run``'s policies, in its order: run them at once when they only read."""
    _plan['scheduler'] = None
    if not runcache.in_use():
        return None  # stock policies only: c7n's loop, as stock
    n = threads()
    region_processes.processes()  # a bad CUSTODIAN_EXT_PROCESSES: one line, before any policy
    policies = list(policies)
    if n < 2 or len(policies) < 2:
        return None
    for p in policies:
        if not pull(p.data) or acts(p.data, getattr(p.options, 'dryrun', False)):
            return None
    _plan['scheduler'] = Scheduler(policies, n)
    return _plan['scheduler']


def region_major_plan(original):
    """``AWS.initialize_policies`` (custodian run): region by region, then planned to run
    at once.

    c7n runs each policy in every region before the next policy; ordered region by
    region, the policies of one region share one cache when they run one after
    another (threads 1). With threads, every policy is started at once.
    """
    def initialize_policies(self, policy_collection, options):
        collection = original(self, policy_collection, options)
        if not runcache.in_use():
            return collection  # stock policies only: c7n's order
        order = {}
        for p in collection:
            order.setdefault(p.options.region, len(order))
        # sorted() is stable: within a region, the policies keep their order
        collection.policies = sorted(collection.policies, key=lambda p: order[p.options.region])
        plan(collection.policies)
        lifetime.settle()  # the loaded policies live for the run: out of the collector's way
        return collection
    return initialize_policies


def scheduled_call(original):
    """``Policy.__call__`` (custodian run): the planned policy's outcome, run on a thread."""
    def __call__(self, *args, **kw):
        scheduler = _plan['scheduler']
        if scheduler is None or args or kw or id(self) not in scheduler.planned or \
                threading.get_ident() in _runners:
            return original(self, *args, **kw)
        return scheduler.outcome(self, original)
    return __call__


# -- c7n-org -------------------------------------------------------------------------

def concurrent_run_account(original):
    """``run_account``: the account-region's policies on threads, one run_account each."""
    def run_account(account, region, policies_config, output_path, cache_period, cache_path,
                    metrics, dryrun, debug):
        args = (output_path, cache_period, cache_path, metrics, dryrun, debug)
        policies = list(policies_config.get('policies') or ())
        n = threads('c7n-org')
        if n < 2 or not runcache.in_use() or len(policies) < 2 or debug or any(
                not pull(p) or acts(p, dryrun) for p in policies):
            return original(account, region, policies_config, *args)

        if not reachable(account, region):
            # c7n-org's own loop: it stops at the first policy, as it always has
            return original(account, region, policies_config, *args)

        def one(policy):
            runner(policy.get('name'))
            try:
                return original(account, region, dict(policies_config, policies=[policy]),
                                *args)
            finally:
                runner_done()

        counts, success = {}, True
        conducting(True)
        pools = []
        try:
            results = []
            paced_group, others = split_paced(policies, data=lambda p: p)
            for group in [g for g in (paced_group, spread(others, lambda p: p.get('resource')))
                          if g]:
                pools.append(ThreadPoolExecutor(max_workers=min(n, len(group)),
                                                thread_name_prefix='custodian-ext-policy'))
                results.append(pools[-1].map(one, group))
            for group_results in results:
                for done, ok in group_results:
                    counts.update(done)
                    success = success and ok
        finally:
            for pool in pools:
                pool.shutdown(wait=True)
            conducting(False)
        return counts, success
    return run_account


def reachable(account, region):
    """The account's role can be assumed (c7n-org's single role): the threads then share
    these credentials (custodian_ext.perf). An account that cannot be entered is left to
    c7n-org's loop, which stops at its first policy, rather than tried once per policy."""
    role = account.get('role')
    if not isinstance(role, str):
        return True  # a role chain or a profile: c7n-org resolves it per run
    from c7n.credentials import SessionFactory
    try:
        SessionFactory(region, assume_role=role, external_id=account.get('external_id'))()
    except Exception:  # whatever it is, c7n-org's loop meets it and reports it as it does
        return False
    return True


def account_region_run(original):
    """c7n-org's ``run_account``: policies at once, and the cache, the cached clients and the
    assumed role kept for the one account-region."""
    return runcache.account_region_scope(concurrent_run_account(original))


def shared_environ(original):
    """c7n-org's ``environ`` (the account's tags as environment variables around a run):
    entered once while several runs of one account-region overlap.

    It sets the variables on entry and deletes them on exit; of two overlapping
    runs, the first to end would take them away from the other (which would then
    fail to delete them). Here the first entry sets them and the last exit
    restores the environment, as one run would.
    """
    import contextlib
    state = {'depth': 0, 'manager': None, 'kw': None}
    lock = threading.Lock()

    @contextlib.contextmanager
    def environ(**kw):
        with lock:
            own = state['depth'] > 0 and state['kw'] != kw
            if not own:
                if state['depth'] == 0:
                    manager = original(**kw)
                    manager.__enter__()
                    state.update(manager=manager, kw=kw)
                state['depth'] += 1
        if own:  # other variables (not c7n-org's own use): as c7n-org does
            with original(**kw) as env:
                yield env
            return
        try:
            yield os.environ
        finally:
            # the restore happens under the lock: a run starting meanwhile waits for it,
            # then sets the variables afresh (c7n-org's exit deletes them)
            with lock:
                state['depth'] -= 1
                if state['depth'] == 0:
                    last = state['manager']
                    state.update(manager=None, kw=None)
                    last.__exit__(None, None, None)
    return environ


# -- logs ----------------------------------------------------------------------------

class OwnThread(logging.Filter):
    """A policy's log file: records of its own thread, and of threads that neither run
    another policy nor wait for policies (c7n's own worker threads: as before)."""

    def __init__(self, owner):
        super().__init__()
        self.owner = owner

    def filter(self, record):
        return record.thread == self.owner or (
            record.thread not in _runners and record.thread not in _conductors)


def own_thread_logs(original):
    """``LogOutput.join_log``: the policy's log handler takes its own thread's records."""
    def join_log(self):
        original(self)
        if getattr(self, 'handler', None) is not None:
            self.handler.addFilter(OwnThread(threading.get_ident()))
    return join_log
