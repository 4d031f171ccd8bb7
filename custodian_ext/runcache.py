"""A resource cache that lives for one account-region run.

The detect pack runs about 80 policies on 25 resource types: twelve on IAM
users, ten on the account, seven on roles... Without a cache, c7n lists (and
augments: ``GetUser`` per user, ``GetRole`` per role) the same resources once
per policy. c7n's own cache avoids that, but it is a file that outlives the
run (c7n-org's default ``--cache-period 15`` keeps results for 15 minutes, in
``~/.cache/c7n-org``): in an incident, a second sweep a few minutes later
would report the account as it was, not as it is. So the pack replaces it,
in ``custodian`` and ``c7n-org``, with this one:

- Every policy of one account-region shares what was listed and augmented
  for a resource type, so each list or describe call is made once per
  account-region, whatever the number of policies on that type.
- It holds one account-region at a time, in memory: the first use from
  another account-region empties it (c7n-org also empties it when each
  account-region starts and ends), so nothing is carried from one run or
  account-region to the next, and memory does not grow with the number of
  accounts. ``--cache-period`` and ``--cache`` no longer matter. While
  ``custodian run`` runs its regions at once (``custodian_ext.concurrency``),
  it holds each region until the region's last policy ends.
- Policies running at once that ask for the same listing (inside c7n's
  ``with cache:`` block) or the same shared read: the first makes the call,
  the others wait for its answer (single flight; a failed call lets the next
  one try).
- The key also holds the policy's ``query:`` block (c7n's own key does not,
  so two S3 policies with different ``augment-keys`` shared one listing).
- Entries are stored pickled, as c7n's file cache stores them: each policy
  gets its own copy, so one policy's annotations never reach another.
- A few read calls that filters make themselves, with the same parameters,
  in several policies (``SHARED_READS``: DescribeTrails, GetEventSelectors,
  DescribeOrganization, ListTrustAnchors, ListAccessKeys...) are answered
  once per account-region too, through the clients the run's session caches
  (``custodian_ext.perf``).
- A policy with actions (not ``--dryrun``) neither reads from it nor adds to
  it: it lists, and its actions verify, against the account as it is (an
  action that re-reads what it changed must never get the answer from before
  the change). It empties the cache when it ends, so a later policy of the
  run sees what the actions changed. The rule sits on ``PullMode.run``, where
  every entry point lands: ``Policy.__call__`` (``custodian run``),
  ``Policy.run`` (c7n-org; c7n defines ``run = __call__``, a second name a
  wrapper of ``__call__`` would miss) and anything that runs a pull mode.

``custodian run`` runs a policy in every region before the next policy; the
pack orders its runs region by region instead (same runs, same output), so
that the policies of one region share one cache.
"""
import pickle
import threading

from c7n import cache as c7n_cache

_lock = threading.Lock()
# scopes: {(account, region): {key: pickled entry}}; reads: the shared reads, by key.
# ``concurrent``: more than one account-region may run at once in this process
# (custodian_ext.concurrency); otherwise one is held at a time.
_state = {'scopes': {}, 'reads': {}, 'acting': 0, 'concurrent': 0, 'enabled': True}
# Single flight: a key being fetched -> (owning thread, Event set when it is released).
_inflight = {}
_waiting = {}   # thread ident -> the key it waits for (to break wait cycles)
_local = threading.local()
WAIT_SECONDS = 600  # the longest a policy waits for another's listing before listing itself


def use_for_run(enabled):
    """Whether this run uses the pack's cache (True) or c7n's own (False).

    Runs that hold none of the pack's policies keep c7n's file cache, its key
    and its ``--cache-period``, so stock Custodian behaves exactly as before.
    """
    _state['enabled'] = bool(enabled)


def in_use():
    """This run holds the pack's policies (the performance layer applies to it)."""
    return _state['enabled']


def scope_of(config):
    return (getattr(config, 'account_id', None), getattr(config, 'region', None))


def clear():
    with _lock:
        _state['scopes'] = {}
        _state['reads'] = {}
        for *_, event in _inflight.values():
            event.set()
        _inflight.clear()


def drop(scope):
    """Let go of one account-region's entries (it has finished)."""
    with _lock:
        _state['scopes'].pop(scope, None)


def set_concurrent(on):
    """Several account-regions run at once: keep each one's entries until ``drop``."""
    with _lock:
        _state['concurrent'] += 1 if on else -1


def reset():
    """Back to a fresh process: empty, and in use (the patches were undone)."""
    clear()
    _state['enabled'] = True


def bypassed():
    """True while a policy with actions runs: nothing is read from or added to the cache."""
    return _state['acting'] > 0


def _owner_waits_for_me(owner):
    """Called with _lock held: does ``owner`` wait, directly or through others, on this thread?"""
    me, seen = threading.get_ident(), set()
    while owner is not None and owner not in seen:
        if owner == me:
            return True
        seen.add(owner)
        held = _inflight.get(_waiting.get(owner))
        owner = held[0] if held else None
    return False


def _release(key, cache_id=None):
    """Called with _lock held: this thread has fetched the key (or given up); wake waiters."""
    held = _inflight.get(key)
    if held is not None and held[0] == threading.get_ident() and \
            (cache_id is None or held[1] == cache_id):
        del _inflight[key]
        held[2].set()


def single_flight(key, claim):
    """None: the caller fetches ``key`` (claimed, if ``claim``). Else: it has waited for
    another thread's fetch of it, and looks again. Call with _lock held."""
    me = threading.get_ident()
    held = _inflight.get(key)
    if held is None:
        if claim is not None:
            _inflight[key] = (me, claim, threading.Event())
        return None
    if held[0] == me or _owner_waits_for_me(held[0]):
        return None
    return held[2]


def wait(key, event):
    """Wait, without _lock, for another thread's fetch of ``key``."""
    me = threading.get_ident()
    with _lock:
        _waiting[me] = key
    try:
        event.wait(WAIT_SECONDS)
    finally:
        with _lock:
            _waiting.pop(me, None)


class RunCache(c7n_cache.Cache):
    """c7n's cache interface over the account-regions held in memory.

    Inside c7n's ``with cache:`` block (list, augment, save), a miss claims the
    key: another policy of the same account-region asking for it meanwhile
    waits for the listing instead of making it again (``custodian_ext.concurrency``
    runs policies at once). A claim ends with ``save`` or with the block.
    """

    def __init__(self, config):
        super().__init__(config)
        self.scope = scope_of(config)

    def _entries(self):
        # called with _lock held
        scopes = _state['scopes']
        if self.scope not in scopes:
            if not _state['concurrent']:
                scopes.clear()  # one account-region at a time
            scopes[self.scope] = {}
        return scopes[self.scope]

    def _inside(self):
        return getattr(_local, 'depth', {}).get(id(self), 0) > 0

    def __enter__(self):
        depth = _local.__dict__.setdefault('depth', {})
        depth[id(self)] = depth.get(id(self), 0) + 1
        return super().__enter__()

    def __exit__(self, *exc):
        depth = _local.__dict__.setdefault('depth', {})
        depth[id(self)] = depth.get(id(self), 1) - 1
        if depth[id(self)] <= 0:
            depth.pop(id(self), None)
            with _lock:
                for key in list(_inflight):
                    _release(key, id(self))
        return super().__exit__(*exc)

    def load(self):
        return True

    def get(self, key):
        if bypassed():
            return None
        flight = (self.scope, c7n_cache.encode(key))
        while True:
            with _lock:
                blob = self._entries().get(flight[1])
                if blob is not None:
                    break
                event = single_flight(flight, id(self) if self._inside() else None)
                if event is None:
                    return None
            wait(flight, event)
        return pickle.loads(blob)  # nosec: our own pickles

    def save(self, key, data):
        if bypassed():
            return
        blob = pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL)
        flight = (self.scope, c7n_cache.encode(key))
        with _lock:
            self._entries()[flight[1]] = blob
            _release(flight)

    def size(self):
        with _lock:
            return sum(len(v) for v in _state['scopes'].get(self.scope, {}).values())


# Read calls that c7n filters and the pack's filters make on their own, with the
# same parameters, in several policies of one run (check-cloudtrail and the
# trail listing both DescribeTrails; two R4.3 checks DescribeOrganization...).
# Their answers are shared like a listing. Only pure reads whose answer the run
# itself cannot change are here: never a job's status, a report being
# generated, or anything paged by a time window. Each maps to the error codes
# that are an answer (an account in no organization), shared too; any other
# error (throttling, access denied) is not kept.
SHARED_READS = {
    ('cloudtrail', 'DescribeTrails'): (),
    ('cloudtrail', 'GetEventSelectors'): (),
    ('cloudtrail', 'GetTrailStatus'): (),
    ('iam', 'ListAccessKeys'): (),
    ('organizations', 'DescribeOrganization'): ('AWSOrganizationsNotInUseException',),
    ('rolesanywhere', 'ListTrustAnchors'): (),
}


def shared_read(client, operation, params, call):
    """``call()``'s answer, shared within the account-region run (SHARED_READS)."""
    from botocore.exceptions import ClientError
    service = client.meta.service_model.service_name
    answers = SHARED_READS.get((service, operation))
    if answers is None or bypassed():
        return call()
    creds = client._request_signer._credentials
    access_key = getattr(creds, 'access_key', None) if creds is not None else None
    # the credentials name the account; the client's region, the region
    key = ('custodian-ext:read', c7n_cache.encode((access_key, client.meta.region_name,
                                                    service, operation, params)))
    while True:
        with _lock:
            blob = _state['reads'].get(key[1])
            if blob is not None:
                break
            # concurrent policies of the account-region: one asks, the others wait for it
            event = single_flight(key, 'read')
            if event is None:
                break
        wait(key, event)
    if blob is not None:
        kind, value = pickle.loads(blob)  # nosec: our own pickles
        if kind == 'error':
            code = value['Error']['Code']
            raise client.exceptions.from_code(code)(value, operation)
        return value
    try:
        try:
            result = call()
            entry = ('ok', result)
        except ClientError as e:
            if e.response.get('Error', {}).get('Code') not in answers:
                raise
            entry, result = ('error', e.response), e
        blob = pickle.dumps(entry, protocol=pickle.HIGHEST_PROTOCOL)
        with _lock:
            _state['reads'][key[1]] = blob
    finally:
        with _lock:
            _release(key)
    if isinstance(result, ClientError):
        raise result
    return result


def run_cache_factory(original):
    """``c7n.cache.factory``: the run's in-memory cache instead of c7n's file cache."""
    def factory(config):
        if not config or not _state['enabled']:
            return original(config)
        return RunCache(config)
    return factory


def query_in_cache_key(original):
    def get_cache_key(self, query):
        key = original(self, query)
        if not _state['enabled']:
            return key
        # c7n's key leaves out the policy's `query:` block, which can change
        # what is fetched: two S3 policies with different `augment-keys`
        # would otherwise share one listing, augmented for only one of them.
        if isinstance(key, dict) and self.data.get('query'):
            key = dict(key, policy_query=self.data['query'])
        return key
    return get_cache_key


def acting_policies_bypass(original):
    """``PullMode.run``: a policy that acts reads live, and empties the cache when it ends."""
    def run(self, *args, **kw):
        policy = self.policy
        acting = bool(policy.data.get('actions')) and not getattr(policy.options, 'dryrun', False)
        if not acting:
            return original(self, *args, **kw)
        with _lock:
            _state['acting'] += 1
        try:
            return original(self, *args, **kw)
        finally:
            with _lock:
                _state['acting'] -= 1
            clear()
    return run


def account_region_scope(original):
    """c7n-org's ``run_account``: the cache and the cached clients live for one account-region."""
    def run_account(*args, **kw):
        from custodian_ext.perf import close_clients, forget_assumed_roles
        clear()
        forget_assumed_roles()
        try:
            return original(*args, **kw)
        finally:
            clear()
            close_clients(keep_connections=True)
            forget_assumed_roles()
    return run_account
