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
  accounts. ``--cache-period`` and ``--cache`` no longer matter.
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
_state = {'scope': None, 'data': {}, 'acting': 0}


def scope_of(config):
    return (getattr(config, 'account_id', None), getattr(config, 'region', None))


def clear():
    with _lock:
        _state['scope'] = None
        _state['data'] = {}


def bypassed():
    """True while a policy with actions runs: nothing is read from or added to the cache."""
    return _state['acting'] > 0


class RunCache(c7n_cache.Cache):
    """c7n's cache interface over the one account-region held in memory."""

    def __init__(self, config):
        super().__init__(config)
        self.scope = scope_of(config)

    def _entries(self):
        # called with _lock held
        if _state['scope'] != self.scope:
            _state['scope'] = self.scope
            _state['data'] = {}
        return _state['data']

    def load(self):
        return True

    def get(self, key):
        if bypassed():
            return None
        with _lock:
            blob = self._entries().get(c7n_cache.encode(key))
        return None if blob is None else pickle.loads(blob)  # nosec: our own pickles

    def save(self, key, data):
        if bypassed():
            return
        blob = pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL)
        with _lock:
            self._entries()[c7n_cache.encode(key)] = blob

    def size(self):
        with _lock:
            if _state['scope'] != self.scope:
                return 0
            return sum(len(v) for v in _state['data'].values())


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
    key = c7n_cache.encode(('custodian-ext:read', access_key, client.meta.region_name,
                            service, operation, params))
    with _lock:
        blob = _state['data'].get(key)
    if blob is not None:
        kind, value = pickle.loads(blob)  # nosec: our own pickles
        if kind == 'error':
            code = value['Error']['Code']
            raise client.exceptions.from_code(code)(value, operation)
        return value
    try:
        result = call()
        entry = ('ok', result)
    except ClientError as e:
        if e.response.get('Error', {}).get('Code') not in answers:
            raise
        entry, result = ('error', e.response), e
    blob = pickle.dumps(entry, protocol=pickle.HIGHEST_PROTOCOL)
    with _lock:
        _state['data'][key] = blob
    if isinstance(result, ClientError):
        raise result
    return result


def run_cache_factory(original):
    """``c7n.cache.factory``: the run's in-memory cache instead of c7n's file cache."""
    def factory(config):
        if not config:
            return original(config)
        return RunCache(config)
    return factory


def query_in_cache_key(original):
    def get_cache_key(self, query):
        key = original(self, query)
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


def region_major(original):
    """``custodian run``: policies ordered region by region, so a region shares one cache."""
    def initialize_policies(self, policy_collection, options):
        collection = original(self, policy_collection, options)
        order = {}
        for p in collection:
            order.setdefault(p.options.region, len(order))
        # sorted() is stable: within a region, the policies keep their order
        collection.policies = sorted(collection.policies, key=lambda p: order[p.options.region])
        return collection
    return initialize_policies


def account_region_scope(original):
    """c7n-org's ``run_account``: the cache and the cached clients live for one account-region."""
    def run_account(*args, **kw):
        from custodian_ext.perf import close_clients
        clear()
        try:
            return original(*args, **kw)
        finally:
            clear()
            close_clients()
    return run_account
