"""c7n-org's account-region jobs started in the order their waits need (performance layer).

c7n-org's ``run`` submits its jobs account by account (every region of the first
account, then of the next), and its process pool starts them in that order. With
the pack, an account's longest job is its global region (us-east-1): the activity
review and the global event-history checks read the account's global events there,
at CloudTrail's 2 ``LookupEvents`` per second per account-region, and every other
region of the account waits for those events (``custodian_ext.shared_run``). In
c7n-org's order the workers all hold one or two accounts' regions, waiting on
those accounts' one us-east-1 clock, while the other accounts' clocks sit idle.

Here the same jobs leave in another order: every account's global region first
(longest chain first), then the other regions account by account, in the order
the accounts' global regions started. Nothing else changes: the same jobs, the
same arguments, the same futures to c7n-org (each resolves with its own job's
result or exception).

c7n-org's loop resolves each account's regions (``-r all``: one DescribeRegions
per account, one after another) between its submissions, so the pool cannot know
when the last job has arrived. ``prepare`` resolves them beforehand, the accounts
at once, and ``resolve_regions`` (patched into c7n-org) answers the loop from
that: the pool holds the jobs until the expected number has arrived, then
submits them in order. Should a job arrive that was not expected, or the loop
pause for longer than ``RELEASE_AFTER``, what is held is submitted as it stands:
the order can be lost, never a job.
"""
import threading
import time
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor

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


class OrderedPool:
    """A ``concurrent.futures`` executor for c7n-org's ``run``: holds the submissions of
    ``run_account(account, region, ...)`` until ``expected`` have arrived, then hands them
    to ``pool_class`` in ``job_order``."""

    def __init__(self, pool_class, max_workers, expected, global_region):
        self._pool = pool_class(max_workers=max_workers)
        self._expected = expected
        self._global_region = global_region
        self._held = []  # (fn, args, kw, future to c7n-org)
        self._lock = threading.Lock()
        self._last = None      # when the last job arrived (time.monotonic())
        self._watcher = None   # one thread: releases what is held after a pause

    def submit(self, fn, *args, **kw):
        outer = Future()
        with self._lock:
            self._held.append((fn, args, kw, outer))
            self._last = time.monotonic()
            if len(self._held) >= self._expected:
                self._release_locked()
            elif self._watcher is None:
                self._watcher = threading.Thread(target=self._watch, daemon=True,
                                                 name='custodian-ext-org-order')
                self._watcher.start()
        return outer

    def _watch(self):
        while True:
            with self._lock:
                if not self._held and self._expected == 0:
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
        held, self._held = self._held, []
        self._expected = 0  # anything after this is not in the plan: it goes at once
        if not held:
            return
        jobs = [(args[0], args[1]) if len(args) >= 2 and isinstance(args[0], dict)
                else ({}, None) for _, args, _, _ in held]
        for i in job_order(jobs, self._global_region):
            fn, args, kw, outer = held[i]
            self._forward(self._pool.submit(fn, *args, **kw), outer)

    @staticmethod
    def _forward(inner, outer):
        if not outer.set_running_or_notify_cancel():
            inner.cancel()
            return

        def done(f):
            if f.cancelled():  # c7n-org's loop waits for every future: never leave one pending
                outer.set_exception(CancelledError())
            elif f.exception() is not None:
                outer.set_exception(f.exception())
            else:
                outer.set_result(f.result())
        inner.add_done_callback(done)

    def shutdown(self, wait=True, **kw):
        self.release()
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
