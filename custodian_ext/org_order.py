"""c7n-org's account-region jobs started in the order their waits need (performance layer).

c7n-org's ``run`` submits its jobs account by account (every region of the first
account, then of the next), and its process pool starts them in that order. With
the pack, an account's longest job is its global region (us-east-1): the activity
review and the global event-history checks read the account's global events there,
at CloudTrail's 2 ``LookupEvents`` per second per account-region, and every other
region of the account waits for those events (``custodian_ext.shared_run``). In
c7n-org's order the workers all hold one or two accounts' regions, waiting on
those accounts' one us-east-1 clock, while the other accounts' clocks sit idle.

Here the same jobs leave in another order, one whenever a worker is free
(``Schedule``): the global regions first, longest chain first; then the other
regions of the accounts whose global region has finished (their events are read),
account by account, while a share of the workers goes on with the remaining
global regions. That share follows the work left: global regions wait on
CloudTrail's clock and use little CPU, the other regions use the CPU, so spread
over the run the two overlap, where all global regions first left the CPU idle
while every worker waited on a clock (measured: an organization's sweep spent its
first third so). Nothing else changes: the same jobs, the same arguments, the same
futures to c7n-org (each resolves with its own job's result or exception).

c7n-org's loop resolves each account's regions (``-r all``: one DescribeRegions
per account, one after another) between its submissions, so the pool cannot know
when the last job has arrived. ``prepare`` resolves them beforehand, the accounts
at once, and ``resolve_regions`` (patched into c7n-org) answers the loop from
that: the pool holds the jobs until the expected number has arrived, then
starts them as workers free. Should a job arrive that was not expected, or the
loop pause for longer than ``RELEASE_AFTER``, what is held is scheduled as it
stands: the order can be lost, never a job.
"""
import collections
import logging
import math
import threading
import time
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor

log = logging.getLogger('custodian.ext')

# Seconds without a new submission after which held jobs go anyway (see the module's
# docstring): c7n-org's loop makes no API call once its regions are resolved.
RELEASE_AFTER = 2.0
# Accounts whose regions are resolved at once (one DescribeRegions each, through STS).
RESOLVE_THREADS = 16

_state = {'regions': None}  # (account name, wanted) -> regions, or the exception raised


def _wanted(cli_regions, account):
    return tuple(cli_regions or account.get('regions', ()) or ())


def prepare(accounts, cli_regions, resolve):
    """Resolve every account's regions as c7n-org's loop will ask (``resolve``: c7n-org's
    own ``resolve_regions``), the accounts at once. Returns the number of jobs c7n-org
    will submit. An exception is kept and raised where c7n-org would meet it."""
    def one(account):
        try:
            return list(resolve(list(_wanted(cli_regions, account)), account))
        except Exception as e:  # raised again, in c7n-org's loop, by resolve_regions
            return e
    with ThreadPoolExecutor(max_workers=min(RESOLVE_THREADS, max(1, len(accounts)))) as pool:
        answers = list(pool.map(one, accounts))
    # the loop passes the very account mappings init returned: they key the answers
    _state['regions'] = {(id(a), _wanted(cli_regions, a)): (a, r)
                         for a, r in zip(accounts, answers)}
    return sum(len(r) for r in answers if isinstance(r, list))


def resolved_regions(original):
    """``c7n_org.cli.resolve_regions``: the answer ``prepare`` read, else c7n-org's own."""
    def resolve_regions(regions, account):
        known = _state['regions'] or {}
        # each answer is used once: a later run in the same process asks AWS again
        account_, answer = known.pop((id(account), tuple(regions or ())), (None, None))
        if account_ is not account:
            return original(regions, account)
        if isinstance(answer, BaseException):
            raise answer
        return list(answer)
    return resolve_regions


def job_order(jobs, global_region):
    """``jobs``: [(account, region)] in c7n-org's order. Their indexes in the order they
    should start: each account's global region first, then the rest account by account."""
    first, rest = [], []
    for i, (account, region) in enumerate(jobs):
        (first if region == global_region(account) else rest).append(i)
    # the rest follow the order the accounts' global regions start in
    started = {jobs[i][0].get('name'): n for n, i in enumerate(first)}
    rest.sort(key=lambda i: (started.get(jobs[i][0].get('name'), len(started)), i))
    return first + rest


class Schedule:
    """Which job starts next when a worker is free.

    ``jobs``: [(account, region)] in c7n-org's order (``({}, None)`` for a job that
    is not ``run_account``'s). Global regions start first while no other region is
    ready; a region is ready once its account's global region has finished (or the
    run has none for it), and the accounts whose global region finished first go
    first (their cached reads are the oldest). Of ``slots`` workers, the global regions
    keep ``ceil(slots * global work left / all work left)``, each job's work its kind's
    mean wall time so far (the same for both kinds until one of each has finished).
    With no global region left and none ready, the rest go in ``job_order``. Each pick
    is constant time but for skipping accounts with nothing left (thousands of jobs).
    """

    def __init__(self, jobs, global_region, slots):
        self._slots = max(1, slots)
        self._jobs = list(jobs)
        order = job_order(self._jobs, global_region)
        globals_ = [i for i in order if self._jobs[i][1] is not None and
                    self._jobs[i][1] == global_region(self._jobs[i][0])]
        self._is_global = set(globals_)
        self._globals = collections.deque(globals_)
        with_global = {self._account(i) for i in globals_}
        self._others = {}  # account -> deque of its other jobs, in job_order
        for i in order:
            if i not in self._is_global:
                self._others.setdefault(self._account(i), collections.deque()).append(i)
        self._waiting = collections.deque(self._others)  # accounts, in job_order
        # accounts whose regions are ready, in the order they became so
        self._ready = collections.deque(a for a in self._others if a not in with_global)
        self._late = collections.deque()  # jobs not in the plan: first among the others
        self._left = sum(len(q) for q in self._others.values())
        self._running_globals = 0
        self._spans = {True: [0.0, 0], False: [0.0, 0]}  # kind -> [seconds, jobs]

    def _account(self, i):
        account = self._jobs[i][0]
        return account.get('name'), account.get('account_id')

    def _mean(self, kind):
        seconds, n = self._spans[kind]
        return seconds / n if n else None

    def _global_share(self):
        g, o = self._mean(True), self._mean(False)
        if g is None or o is None:
            g = o = 1.0
        left_g, left_o = len(self._globals) * g, (self._left + len(self._late)) * o
        return math.ceil(self._slots * left_g / ((left_g + left_o) or 1.0))

    def add(self, job):
        """A job that arrived late (not in the plan): it goes first among the others."""
        self._jobs.append(job)
        self._late.append(len(self._jobs) - 1)

    def __bool__(self):
        return bool(self._globals or self._left or self._late)

    @staticmethod
    def _front(accounts, others):
        """The first of ``accounts`` with a job left (those with none are dropped)."""
        while accounts and not others[accounts[0]]:
            accounts.popleft()
        return accounts[0] if accounts else None

    def next(self):
        """The index of the job to start now, or None if none is left."""
        if self._late:
            ready = True
        else:
            ready = self._front(self._ready, self._others) is not None
        if self._globals and (not ready or self._running_globals < self._global_share()):
            self._running_globals += 1
            return self._globals.popleft()
        if self._late:
            return self._late.popleft()
        account = self._ready[0] if ready else self._front(self._waiting, self._others)
        if account is None:
            return None
        self._left -= 1
        return self._others[account].popleft()

    def finished(self, i, seconds=None):
        """Job ``i`` ended, after ``seconds`` of wall time (None: it never ran)."""
        kind = i in self._is_global
        if kind:
            self._running_globals -= 1
            if self._account(i) in self._others:
                self._ready.append(self._account(i))
        if seconds is not None:
            self._spans[kind][0] += seconds
            self._spans[kind][1] += 1


class InOrder:
    """``Schedule``'s stand-in should it fail: the jobs left, in the order they arrived."""

    def __init__(self, left, count):
        self._left = collections.deque(left)
        self._count = count

    def __bool__(self):
        return bool(self._left)

    def next(self):
        return self._left.popleft() if self._left else None

    def add(self, job):
        self._left.append(self._count)
        self._count += 1

    def finished(self, i, seconds=None):
        pass


class OrderedPool:
    """A ``concurrent.futures`` executor for c7n-org's ``run``: holds the submissions of
    ``run_account(account, region, ...)`` until ``expected`` have arrived, then hands them
    to ``pool_class``, one whenever one of its ``max_workers`` is free, in ``Schedule``'s
    order."""

    def __init__(self, pool_class, max_workers, expected, global_region):
        self._pool = pool_class(max_workers=max_workers)
        self._slots = max_workers
        self._expected = expected
        self._global_region = global_region
        self._held = []  # (fn, args, kw, future to c7n-org)
        self._lock = threading.Condition()
        self._last = None      # when the last job arrived (time.monotonic())
        self._watcher = None   # one thread: releases what is held after a pause
        self._items = []       # every released (fn, args, kw, outer), by Schedule index
        self._schedule = None
        self._running = 0
        self._feeder = None    # one thread: starts a job whenever a worker is free
        self._closing = False

    def submit(self, fn, *args, **kw):
        outer = Future()
        with self._lock:
            if self._schedule is not None:  # not in the plan: scheduled at once
                self._items.append((fn, args, kw, outer))
                self._schedule.add(self._job(args))
                self._lock.notify_all()
                return outer
            self._held.append((fn, args, kw, outer))
            self._last = time.monotonic()
            if len(self._held) >= self._expected:
                self._release_locked()
            elif self._watcher is None:
                self._watcher = threading.Thread(target=self._watch, daemon=True,
                                                 name='custodian-ext-org-order')
                self._watcher.start()
        return outer

    @staticmethod
    def _job(args):
        return (args[0], args[1]) if len(args) >= 2 and isinstance(args[0], dict) else ({}, None)

    def _watch(self):
        while True:
            with self._lock:
                if self._schedule is not None:
                    return  # released
                waited = time.monotonic() - self._last
                if waited >= RELEASE_AFTER:
                    self._release_locked()
                    return
            time.sleep(RELEASE_AFTER - waited)

    def release(self):
        with self._lock:
            self._release_locked()

    def _release_locked(self):
        if self._schedule is not None:
            return
        held, self._held = self._held, []
        self._items = held
        self._schedule = Schedule([self._job(args) for _, args, _, _ in held],
                                  self._global_region, self._slots)
        self._feeder = threading.Thread(target=self._feed, daemon=True,
                                        name='custodian-ext-org-feed')
        self._feeder.start()

    def _feed(self):
        while True:
            with self._lock:
                while not (self._schedule and self._running < self._slots):
                    if self._closing and not self._schedule:
                        return
                    self._lock.wait()
                try:
                    i = self._schedule.next()
                except Exception as e:  # a fault in the order must not strand c7n-org's jobs
                    self._in_order_locked(e)
                    i = self._schedule.next()
                self._running += 1
                item, self._items[i] = self._items[i], None  # started: never again
            fn, args, kw, outer = item
            if not outer.set_running_or_notify_cancel():
                self._done(i, None)
                continue
            began = time.monotonic()
            try:
                inner = self._pool.submit(fn, *args, **kw)
            except Exception as e:  # a broken or shut pool: the job fails, never hangs
                outer.set_exception(e)
                self._done(i, None)
                continue
            inner.add_done_callback(
                lambda f, i=i, outer=outer, began=began: self._forward(f, outer, i, began))

    def _forward(self, inner, outer, i, began):
        try:
            if inner.cancelled():  # c7n-org's loop waits for every future: never leave one pending
                outer.set_exception(CancelledError())
            elif inner.exception() is not None:
                outer.set_exception(inner.exception())
            else:
                outer.set_result(inner.result())
        finally:
            self._done(i, time.monotonic() - began)

    def _done(self, i, seconds):
        with self._lock:
            self._running -= 1
            try:
                self._schedule.finished(i, seconds)
            except Exception as e:
                self._in_order_locked(e)
            self._lock.notify_all()

    def _in_order_locked(self, error):
        """The jobs not started yet, in the order they arrived (``InOrder``)."""
        log.warning("c7n-org's jobs left start in the order they arrived: the pack's order "
                    "failed (%s: %s)", type(error).__name__, error)
        self._schedule = InOrder([i for i, item in enumerate(self._items) if item is not None],
                                 len(self._items))

    def _drained(self):
        return self._schedule is not None and not self._schedule and self._running == 0

    def shutdown(self, wait=True, **kw):
        self.release()
        with self._lock:
            while wait and not self._drained():
                self._lock.wait()
            self._closing = True
            self._lock.notify_all()
        self._pool.shutdown(wait=wait, **kw)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.shutdown(wait=True)
        return False


def ordered(pool_class, expected, global_region):
    """The executor class c7n-org's ``init`` returns, made to start jobs in ``job_order``."""
    def executor(max_workers):
        return OrderedPool(pool_class, max_workers, expected, global_region)
    return executor
