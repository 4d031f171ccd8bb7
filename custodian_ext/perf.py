"""The pack's performance layer for botocore sessions and clients.

c7n-org makes a new boto3 session for every account-region (and ``custodian
run`` one per region), and c7n asks that session for a new client every time
a resource manager, filter or action needs one: about a hundred clients per
account-region for the detect pack. Each new session parses botocore's JSON
service models again, and each new client rebuilds its service model and a
Python class with one method per API operation (~600 for EC2). Measured here,
that was about three quarters of c7n-org's client CPU per account-region.

Within one process (a c7n-org worker, or ``custodian run``):

- ``share_loader``: every botocore session shares one data loader, so each
  JSON model is parsed once per process. The loader only reads botocore's
  data files and caches what it parsed, the same objects one session already
  hands to all of its clients.
- ``share_models``: clients of the same service share one ``ServiceModel``
  (immutable; it caches the operation and shape objects it resolves) and the
  generated operation methods. The client class itself is still built, and
  botocore's and boto3's ``creating-client-class`` handlers still run, for
  every client, exactly as before.
- ``cache_clients``: a session made by c7n's ``SessionFactory`` (one per
  account-region and credentials) hands out one client per service, region
  and endpoint, as c7n's own (unused) ``CustodianSession`` would. What c7n
  sets per policy on the session is carried over to the cached client when
  it is handed out: the policy's user agent and c7n's API-call statistics
  (``api-stats`` in ``metadata.json``). Clients asked for with explicit
  credentials or a ``Config`` are not cached. The sessions of one identity
  (an account-region's assumed role, or the caller's own credentials) share
  their clients across the policy threads (``_SharedClients``); on a shared
  client the user agent and statistics are the calling thread's policy's.
  c7n-org drops them at the end of every account-region, and keeps their
  endpoints' open connections for the account-regions after it
  (``close_clients(keep_connections=True)``). A forked process never uses
  its parent's (``_forked``).
- ``shared_ssl_context`` and ``loaded_ca_once``: HTTPS connections load the CA
  bundle once per process, not once each (urllib3 reloads it into the SSL
  context for every new connection).

``CUSTODIAN_EXT_PERF=0`` switches all of this off (and the per-run resource
cache, ``custodian_ext.runcache``), for comparison with stock Cloud Custodian;
it changes no check. The functions here are wrapper factories and their
state; the patch table (``custodian_ext.patches.table``) applies them in the
``custodian`` and ``c7n-org`` programs only.

``retry_defaults`` (not a performance mechanism, and not switched off with
it): botocore's ``standard`` retry mode, with up to ``MAX_ATTEMPTS`` attempts,
for every client whose configuration (``AWS_RETRY_MODE``,
``AWS_MAX_ATTEMPTS``, ``retry_mode`` / ``max_attempts`` in the AWS config
file, or the client's own ``Config``) does not say otherwise. A sweep of many
accounts meets AWS's API throttling; standard mode retries throttling errors
with exponential backoff and jitter, within a retry quota.
"""
import os
import threading
import time

_lock = threading.RLock()
_loaders = {}
_models = {}    # (service name, id(json model)) -> (json model, ServiceModel)
_methods = {}   # id(ServiceModel) -> (ServiceModel, operation methods, name mapping)
_accepts = {}   # plain function -> accepts **kwargs
_aliases = {}   # event name -> aliased name, for emitters with botocore's standard aliases
_open_clients = []  # cached clients, closed by close_clients() at the end of a run
_http_sessions = {}  # (endpoint prefix, region, host) -> the HTTP session its clients share
_http_used = {}  # that key -> when an account-region that used it ended (time.monotonic())
_base_sessions = {}  # profile -> the boto3 session c7n-org assumes roles from
_assumed = {}  # (profile, role, session name, external id, policy) -> its credentials
_role_clients = {}  # an identity (that key, or the caller's) -> its _SharedClients
_sessions = {}  # (an identity, region) -> the session its policy threads share
_assuming = threading.Lock()
_loaded = []    # c7n-org's load_available result, once
_ssl_contexts = {}  # CA bundle path -> the SSL context the HTTP sessions verifying with it share

# c7n-org: an endpoint's open connections are kept for the next account-regions unless
# none has used them for this long, and only the most recently used endpoints' up to this
# many connections in all. A connection is not tied to credentials (each request is
# signed); reusing it saves its TCP and TLS handshakes. The bounds are for the worker's
# file descriptors and the server's idle connections: AWS closes idle connections
# itself, urllib3 checks a pooled connection before reusing it, and the standard retry
# mode retries a connection closed under a request.
KEEP_IDLE_SECONDS = 60.0
KEEP_CONNECTIONS = 256

RETRY_MODE = 'standard'
MAX_ATTEMPTS = 6  # the first try and up to five retries
# Handlers c7n registers on a session per policy (with these unique ids),
# carried over to a cached client each time it is handed out.
SESSION_HANDLERS = (('after-call.*.*', 'c7n-api-stats'),)


def reset():
    """Forget the sessions and clients the wrappers hold (the patches were undone).

    Parsed models, loaders and generated methods are kept: they are pure
    functions of botocore's data files, the same whichever account asks.
    """
    close_clients()
    with _lock:
        _base_sessions.clear()
        _assumed.clear()
        _role_clients.clear()
        _sessions.clear()
        del _loaded[:]


class _SearchPaths(list):
    # boto3.Session appends its own data folder to the loader's search
    # paths each time a session is made; with one loader, once is enough.
    def append(self, path):
        if path not in self:
            super().append(path)


# -- share_loader: botocore.session.create_loader --------------------------------

def shared_loader(original):
    """Every botocore session shares one data loader: each JSON model is parsed once."""
    def create_loader(search_path_string=None):
        with _lock:
            loader = _loaders.get(search_path_string)
            if loader is None:
                loader = original(search_path_string)
                loader._search_paths = _SearchPaths(loader._search_paths)
                _loaders[search_path_string] = loader
            return loader
    return create_loader


# -- share_models: botocore.client.ClientCreator ---------------------------------

def shared_service_model(original):
    """One ServiceModel per service model (immutable; it caches what it resolves)."""
    def _load_service_model(self, service_name, api_version=None):
        from botocore.model import ServiceModel
        json_model = self._loader.load_service_model(
            service_name, 'service-2', api_version=api_version)
        key = (service_name, id(json_model))
        with _lock:
            entry = _models.get(key)
            if entry is None or entry[0] is not json_model:
                # the model dict is held here, so its id cannot be reused
                entry = _models[key] = (json_model, ServiceModel(json_model,
                                                                 service_name=service_name))
        return entry[1]
    return _load_service_model


def _generated(creator, service_model, methods, mapping):
    with _lock:
        entry = _methods.get(id(service_model))
        if entry is None or entry[0] is not service_model:
            entry = _methods[id(service_model)] = (
                service_model, methods(creator, service_model), mapping(creator, service_model))
    return entry


def shared_methods(original):
    """The generated operation methods of a service model, built once (copied per client)."""
    from custodian_ext.patches import original as unpatched

    def _create_methods(self, service_model):
        # a copy: creating-client-class handlers add to the class's attributes
        mapping = unpatched('botocore.client:ClientCreator._create_name_mapping')
        return dict(_generated(self, service_model, original, mapping)[1])
    return _create_methods


def shared_name_mapping(original):
    from custodian_ext.patches import original as unpatched

    def _create_name_mapping(self, service_model):
        methods = unpatched('botocore.client:ClientCreator._create_methods')
        return dict(_generated(self, service_model, methods, original)[2])
    return _create_name_mapping


# -- faster_events: botocore.hooks -----------------------------------------------

def remembered_accepts_kwargs(original):
    """Whether a handler accepts ``**kwargs``, remembered for plain functions.

    botocore checks each handler it registers with ``inspect`` (~300 for every
    new session). A plain function's signature cannot change. Bound methods and
    partials are made anew for each session, but whether they take ``**kwargs``
    is their function's answer (binding ``self`` or arguments leaves ``**kwargs``
    as it is): they are answered from the function. Other callables are checked
    as before.
    """
    import functools
    import types

    def plain(func):
        for _ in range(8):  # a partial of a bound method of a partial...
            if type(func) is types.MethodType:
                func = func.__func__
            elif type(func) is functools.partial:
                func = func.func
            else:
                break
        return func if type(func) is types.FunctionType else None

    def accepts_kwargs(func):
        key = plain(func)
        if key is None:
            return original(func)
        found = _accepts.get(key, _accepts)  # None is an answer: no **kwargs
        if found is _accepts:
            found = _accepts[key] = original(key)
        return found
    return accepts_kwargs


def shared_alias_cache(original):
    """Aliased event names (a pure function of the name) shared by standard emitters."""
    from botocore import hooks
    standard = dict(hooks.EVENT_ALIASES)

    def __init__(self, event_emitter, event_aliases=None):
        original(self, event_emitter, event_aliases)
        if self._event_aliases == standard:
            self._alias_name_cache = _aliases
    return __init__


# -- cache_clients: one client per service, region and endpoint per identity ------

_handing = threading.local()  # per thread: what its policy set, per shared client
_thread_classes = {}          # (class, fields) -> its per-thread subclass
UA_FIELDS = ('_session_user_agent_name', '_session_user_agent_version',
             '_session_user_agent_extra')
SESSION_UA_FIELDS = ('user_agent_name', 'user_agent_version', 'user_agent_extra')


class _SharedClients(dict):
    """The cached clients of one identity: an account-region's assumed role (c7n-org), or
    the caller's own credentials, shared by the sessions of all policy threads: each
    client is made once per identity, region and service, not once per thread and
    session (a client costs about as much CPU as a listing)."""


def _mine():
    state = getattr(_handing, 'state', None)
    if state is None:
        state = _handing.state = {}
    return state


def carried(fn):
    """``fn``, to be called on another thread on this thread's behalf: its calls on shared
    clients and sessions carry this thread's policy's user agent and count in its
    api-stats, as if this thread made them (it shares this thread's state: anything it
    sets there, syncing a client it makes, is this thread's policy's own setting)."""
    state = _mine()

    def call(*args, **kw):
        before = getattr(_handing, 'state', None)
        _handing.state = state
        try:
            return fn(*args, **kw)
        finally:
            _handing.state = before
    return call


def carrying_executor(original):
    """c7n's thread pools (``executor_factory`` of resource managers, filters and actions):
    each task carries the submitting thread's policy (``carried``).

    c7n reads a resource's details on a pool's threads (S3 buckets' subdocuments, EBS
    snapshots' attributes...). On a shared client those threads sent the user agent of
    whichever policy had synced it last, so the calls named another policy in CloudTrail's
    ``userAgent`` (``c7n/policy#<name>``) and counted in its api-stats.
    """
    class CarryingExecutor(original):
        def submit(self, fn, /, *args, **kw):  # Executor.map submits through here too
            return super().submit(carried(fn), *args, **kw)
    CarryingExecutor.__name__ = CarryingExecutor.__qualname__ = 'Carrying' + original.__name__
    return CarryingExecutor


def _per_thread_field(name):
    # a thread that set the field (its policy's sync) reads its own value; others (c7n's
    # own worker threads, which run no policy) the value set last, as before sharing
    def get(self):
        owner, value = _mine().get((id(self), name), (None, None))
        return value if owner is self else self.__dict__.get(name)

    def set_(self, value):
        self.__dict__[name] = value
        _mine()[(id(self), name)] = (self, value)  # the owner: an id can be reused
    return property(get, set_)


def _per_thread(obj, fields):
    """Make ``fields`` of ``obj`` per-thread (``_per_thread_field``), by its class."""
    cls = type(obj)
    with _lock:
        sub = _thread_classes.get((cls, fields))
        if sub is None:
            sub = _thread_classes[(cls, fields)] = type(
                'PerThread' + cls.__name__, (cls,),
                {name: _per_thread_field(name) for name in fields})
    obj.__class__ = sub


def _dispatch(client, unique_id):
    """One handler on a shared client that calls the calling thread's policy's own."""
    key = (id(client), unique_id)

    def handler(**kw):
        owner, h = _mine().get(key, (None, None))
        if owner is not client:
            h = client.__dict__.get('_ext_last_' + unique_id)
        return h(**kw) if h is not None else None
    return handler


def _share(client):
    """Called with _lock held, once, when a client joins a _SharedClients."""
    _per_thread(client._user_agent_creator, UA_FIELDS)
    for event, unique_id in SESSION_HANDLERS:
        client.meta.events.unregister(event, unique_id=unique_id)
        client.meta.events.register(event, _dispatch(client, unique_id), unique_id=unique_id)
    client._ext_shared = True


def _sync(client, session):
    """What c7n set on the session for the current policy, onto a cached client (a shared
    one: for the calling thread)."""
    botocore_session = session._session
    client._user_agent_creator._session_user_agent_name = botocore_session.user_agent_name
    client._user_agent_creator._session_user_agent_version = \
        botocore_session.user_agent_version
    client._user_agent_creator._session_user_agent_extra = botocore_session.user_agent_extra
    if getattr(client, '_ext_shared', False):
        for _, unique_id in SESSION_HANDLERS:
            handler = _session_handler(session, unique_id)
            client.__dict__['_ext_last_' + unique_id] = handler
            _mine()[(id(client), unique_id)] = (client, handler)
        return
    for event, unique_id in SESSION_HANDLERS:
        client.meta.events.unregister(event, unique_id=unique_id)
        handler = _session_handler(session, unique_id)
        if handler is not None:
            client.meta.events.register(event, handler, unique_id=unique_id)


def _session_handler(session, unique_id):
    """The handler registered on ``session`` under ``unique_id`` (a shared session: by the
    calling thread's policy), or None."""
    events = session.events
    if getattr(events, '_ext_per_thread', False):
        owner, handler = _mine().get((id(events), unique_id), (None, None))
        return handler if owner is events else None
    source = getattr(events, '_emitter', events)
    entry = source._unique_id_handlers.get(unique_id)
    return entry['handler'] if entry is not None else None


def _per_thread_session(session):
    """Make ``session`` shareable by policy threads: what c7n sets on it for a policy (the
    user agent, the api-stats handler: ``SessionFactory.update``) is the setting thread's.

    Called once, before the session is handed to another thread; registrations made so
    far become the calling thread's.
    """
    _per_thread(session._session, SESSION_UA_FIELDS)
    events = session.events
    source = getattr(events, '_emitter', events)
    for event, unique_id in SESSION_HANDLERS:
        entry = source._unique_id_handlers.get(unique_id)
        if entry is not None:
            events.unregister(event, unique_id=unique_id)
            _mine()[(id(events), unique_id)] = (events, entry['handler'])
    register, unregister = events.register, events.unregister
    mine = {unique_id for _, unique_id in SESSION_HANDLERS}

    def per_thread_register(event_name, handler, unique_id=None, unique_id_uses_count=False):
        if unique_id in mine:
            _mine()[(id(events), unique_id)] = (events, handler)
            return None
        return register(event_name, handler, unique_id=unique_id,
                        unique_id_uses_count=unique_id_uses_count)

    def per_thread_unregister(event_name, handler=None, unique_id=None,
                              unique_id_uses_count=False):
        if unique_id in mine:
            _mine().pop((id(events), unique_id), None)
            return None
        return unregister(event_name, handler=handler, unique_id=unique_id,
                          unique_id_uses_count=unique_id_uses_count)
    events.register, events.unregister = per_thread_register, per_thread_unregister
    events._ext_per_thread = True
    return session


def _endpoint_key(client):
    endpoint = getattr(client, '_endpoint', None)
    if endpoint is None:
        return None
    return (client.meta.service_model.endpoint_prefix, client.meta.region_name, endpoint.host)


def _share_connections(client):
    """Called with _lock held: the client uses the open HTTPS connections of the other
    cached clients of its endpoint (service and region), whichever session made them,
    in this account-region or (c7n-org) the ones before it.

    Each new connection costs a TCP and a TLS handshake (two round trips) before its
    first request. c7n's threads and sessions each make their own clients; the
    connections to one endpoint are shared by all of them (urllib3's pools are
    thread-safe; a request is signed, not its connection).
    """
    key = _endpoint_key(client)
    if key is None:
        return
    endpoint = client._endpoint
    shared = _http_sessions.get(key)
    if shared is None:
        _http_sessions[key] = endpoint.http_session
    elif shared is not endpoint.http_session:
        own, endpoint.http_session = endpoint.http_session, shared
        own.close()


def session_client_cache(original):
    """c7n's SessionFactory marks the sessions it makes: their clients are cached."""
    def update(self, session):
        if getattr(session, '_ext_clients', None) is None:
            session._ext_clients = {}
        return original(self, session)
    return update


def cached_client(original):
    """``Session.client``: one client per service, region and endpoint in a marked session.

    Clients asked for with explicit credentials or a ``Config`` are not cached.
    """
    def client(self, service_name, region_name=None, api_version=None, use_ssl=True,
               verify=None, endpoint_url=None, aws_access_key_id=None,
               aws_secret_access_key=None, aws_session_token=None, config=None,
               aws_account_id=None):
        clients = getattr(self, '_ext_clients', None)
        simple = (clients is not None and api_version is None and config is None
                  and aws_access_key_id is None and aws_secret_access_key is None
                  and aws_session_token is None and aws_account_id is None)
        if not simple:
            made = original(
                self, service_name, region_name=region_name, api_version=api_version,
                use_ssl=use_ssl, verify=verify, endpoint_url=endpoint_url,
                aws_access_key_id=aws_access_key_id,
                aws_secret_access_key=aws_secret_access_key,
                aws_session_token=aws_session_token, config=config,
                aws_account_id=aws_account_id)
            if getattr(self.events, '_ext_per_thread', False):
                _sync(made, self)  # a shared session's handlers are the thread's
            return made
        key = (service_name, region_name or self.region_name, use_ssl, verify, endpoint_url)
        with _lock:
            c = clients.get(key)
            if c is None:
                c = clients[key] = original(
                    self, service_name, region_name=region_name, use_ssl=use_ssl,
                    verify=verify, endpoint_url=endpoint_url)
                c._ext_cached = True  # its read calls may be shared (runcache.SHARED_READS)
                _open_clients.append(c)
                _share_connections(c)
                if isinstance(clients, _SharedClients):
                    _share(c)
                    _sync(c, self)
            else:
                _sync(c, self)
        return c
    return client


def shared_reads(original):
    """Cached clients answer ``runcache.SHARED_READS`` once per account-region."""
    def _make_api_call(self, operation_name, api_params):
        if not getattr(self, '_ext_cached', False):
            return original(self, operation_name, api_params)
        from custodian_ext.runcache import shared_read
        return shared_read(self, operation_name, api_params,
                           lambda: original(self, operation_name, api_params))
    return _make_api_call


# -- TLS: botocore.httpsession.URLLib3Session ---------------------------------------

def shared_ssl_context(original):
    """``URLLib3Session._get_ssl_context``: the HTTP sessions that verify against the same
    CA bundle share one SSL context, into which ``loaded_ca_once`` loads the bundle.

    Not shared: a session that does not verify, or presents a client certificate (urllib3
    loads it into the context). urllib3 sets the context's ``verify_mode`` from each
    connection's ``cert_reqs``: the same for every session of one key.
    """
    def _get_ssl_context(self):
        verify = getattr(self, '_verify', None)
        if not verify or getattr(self, '_cert_file', None):
            return original(self)
        from botocore.httpsession import get_cert_path
        key = get_cert_path(verify)
        with _lock:
            context = _ssl_contexts.get(key)
            if context is None:
                context = _ssl_contexts[key] = original(self)
                context._ext_ca = None  # the bundle it holds, once loaded_ca_once has loaded it
        return context
    return _get_ssl_context


def loaded_ca_once(original):
    """``URLLib3Session._setup_ssl_cert``: the CA bundle is loaded into a shared SSL context
    once per process, not once per new HTTPS connection.

    botocore names its bundle on every connection pool, and urllib3 then calls
    ``load_verify_locations`` for each new connection: with OpenSSL 3 that parsed
    botocore's 126 CA certificates again each time, 25-40 ms of CPU per connection on the
    benchmark's machine (urllib3 #3623, botocore #3171, CPython #95031), more than the
    TLS handshake itself. The connection still verifies the server's certificate and
    name against the same bundle (``cert_reqs`` is unchanged).
    """
    def _setup_ssl_cert(self, conn, url, verify):
        original(self, conn, url, verify)
        path = getattr(conn, 'ca_certs', None)
        context = (getattr(conn, 'conn_kw', None) or {}).get('ssl_context')
        if not path or not hasattr(context, '_ext_ca'):
            return  # not a shared context: as botocore and urllib3 do it
        if context._ext_ca != path:
            with _lock:
                if context._ext_ca is None:
                    context.load_verify_locations(path)
                    context._ext_ca = path
            if context._ext_ca != path:
                # another bundle than the context's (its key says it cannot be): a context of
                # its own, so urllib3 never adds this bundle's CAs to the shared one
                from urllib3.util.ssl_ import create_urllib3_context
                conn.conn_kw['ssl_context'] = create_urllib3_context()
                return
        conn.ca_certs = None
    return _setup_ssl_cert


# -- share_base_session: c7n.credentials.SessionFactory.__call__ --------------------

def shared_base_session(original):
    """One session per profile to call sts:AssumeRole from, instead of one per account-region.

    c7n's ``SessionFactory`` builds a new boto3 session with the caller's
    credentials for every assume-role session it makes, only to call
    AssumeRole with it (and to renew the role's credentials). The caller's
    session is the same for every account-region of a c7n-org run. The sessions
    made with one role's credentials share their cached clients (``_SharedClients``)
    until the account-region ends (``forget_assumed_roles``).
    """
    from c7n import credentials

    def __call__(self, assume=True, region=None):
        if not (self.assume_role and assume):
            caller = ('caller', self.profile, region or self.region, _caller_environment())
            with _lock:
                session = _sessions.get(caller)
            if session is not None:
                return self.update(session)
            session = original(self, assume=assume, region=region)
            if _share_callers_clients(session, self.profile):
                return _keep(self, caller, session)
            return session
        import json
        import botocore.session
        region = region or self.region
        key = (self.profile, self.assume_role, self.session_name, self.external_id,
               json.dumps(self.session_policy, sort_keys=True))
        with _lock:
            session = _sessions.get((key, region))
        if session is not None:
            return self.update(session)
        with _lock:
            base = _base_sessions.get(self.profile)
            if base is None:
                base = _base_sessions[self.profile] = credentials.Session(
                    profile_name=self.profile)
                base._ext_clients = {}  # its STS client is reused too
        # one AssumeRole for the threads of an account-region asking at once
        with _assuming:
            shared = _assumed.get(key)
            if shared is None:
                session = credentials.assumed_session(
                    self.assume_role, self.session_name, self.session_policy, base,
                    region, self.external_id)
                with _lock:
                    _assumed[key] = session._session._credentials
                session._ext_clients = _shared_clients(key)
                return _keep(self, (key, region), session)
        # the role's credentials (they renew themselves) in a session of its own, as
        # c7n's assumed_session builds it
        core = botocore.session.get_session()
        core._credentials = shared
        core.set_config_variable('region', region or 'us-east-1')
        session = credentials.Session(botocore_session=core)
        session._ext_clients = _shared_clients(key)
        return _keep(self, (key, region), session)
    return __call__


def _keep(factory, key, session):
    """The session the policy threads of one identity and region share (``key``):
    ``session`` if it is the first, made per-thread (``_per_thread_session``); then
    c7n's per-policy settings for the calling thread (``factory.update``).

    c7n caches a session per thread and region (``local_session``) and the pack runs
    policies on threads: each new thread built a botocore session (about 300 handlers
    registered, a credential chain) for every region and account-region.
    """
    with _lock:
        found = _sessions.get(key)
        if found is None:
            found = _sessions[key] = _per_thread_session(session)
    return factory.update(found)


def _caller_environment():
    # the caller's identity comes from the environment (keys, profile, files, role); c7n-org
    # sets keys there for a role chain (its ``environ``): a change is another identity
    import os
    return tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith('AWS_')))


def _share_callers_clients(session, profile):
    """A session of the caller's own identity (a profile, or the environment's keys):
    every such session of the process (c7n-org: of the account-region) shares its clients.
    ``custodian run`` makes one session per policy thread and region (32 threads, 17
    regions), each of which made its own clients. True if it now shares them."""
    if getattr(session, '_ext_clients', None) != {}:
        return False  # not one of c7n's, or its clients already made: leave it
    try:
        found = session.get_credentials()
        access_key = found.access_key if found is not None else None
    except Exception:  # whatever it is, the session's first call meets it and reports it
        return False
    if access_key:
        session._ext_clients = _shared_clients(('caller', profile, access_key))
        return True
    return False


def _shared_clients(key):
    with _lock:
        clients = _role_clients.get(key)
        if clients is None:
            clients = _role_clients[key] = _SharedClients()
        return clients


def forget_assumed_roles():
    """The end of an account-region (c7n-org): its role's credentials and clients are not
    reused."""
    with _lock:
        _assumed.clear()
        _role_clients.clear()
        _sessions.clear()


# -- c7n-org -----------------------------------------------------------------------

def load_available_once(original):
    """c7n-org loads every resource module in each account-region; after the first, once is all."""
    def load_available(resources=True):
        # the modules stay loaded; reloading re-notifies every resource type to
        # every subscriber (the pack registers its filters through them)
        if not (_loaded and resources):
            result = original(resources)
            if resources:
                _loaded.append(result)
            return result
        return _loaded[0]
    return load_available


def services_of(policies_config):
    """botocore service names the policies call: their resources' and their permissions'."""
    import botocore.session
    from c7n.config import Config
    from c7n.policy import PolicyCollection
    available = set(botocore.session.get_session().get_available_services())
    prefixes = {'tag': 'resourcegroupstaggingapi'}
    found = {'sts'}
    try:
        collection = PolicyCollection.from_data(
            policies_config, Config.empty(region='us-east-1', account_id='000000000000'))
        for p in collection:
            model = p.resource_manager.get_model()
            found.add(getattr(model, 'service', None))
            try:
                perms = p.get_permissions()
            except Exception:
                perms = ()
            for perm in perms:
                prefix = perm.split(':', 1)[0].lower()
                found.add(prefixes.get(prefix, prefix))
    except Exception:  # warming is an optimisation: never fail a run on it
        pass
    return sorted(s for s in found if s in available)


def warm(policies_config):
    """Parse, before c7n-org forks its workers, the models the policies will use.

    Workers are forked from the c7n-org process and inherit what it has
    parsed, so each service model is parsed once per run instead of once per
    worker. Clients are built with placeholder credentials and no API call.
    """
    import boto3
    session = boto3.Session(region_name='us-east-1', aws_access_key_id='warm',
                            aws_secret_access_key='warm')
    for service in services_of(policies_config):
        try:
            session.client(service)
        except Exception:
            pass


def forget_connections():
    """A forked process forgets the clients, sessions and assumed roles it inherited
    without closing them (their connections are its parent's too): it makes its own."""
    with _lock:
        del _open_clients[:]
        _http_sessions.clear()
        _http_used.clear()
        _base_sessions.clear()
        _assumed.clear()
        _role_clients.clear()
        _sessions.clear()


def _forked():
    """``os.register_at_fork``: a forked child starts with new locks (a thread of its
    parent may have held one at the fork) and without its parent's connections.

    c7n-org forks its workers after its start has made clients (the accounts' regions,
    resolved with their profiles' credentials): a pooled socket shared by two processes
    mixes their requests and answers, so one account-region could read another's.
    """
    global _lock, _assuming
    _lock = threading.RLock()
    _assuming = threading.Lock()
    forget_connections()


os.register_at_fork(after_in_child=_forked)


def _idle_connections(http_session):
    """The open connections waiting in a botocore HTTP session's pools (urllib3 queues
    a connection, or None for a slot not yet used)."""
    try:
        pools = list(http_session._manager.pools._container.values())
        return sum(1 for p in pools for c in list(p.pool.queue) if c is not None)
    except Exception:  # another urllib3: count the endpoint as full
        return 10


def close_clients(keep_connections=False):
    """Close the cached clients (the end of an account-region, or of a run).

    ``keep_connections`` (c7n-org, between account-regions): their endpoints' open
    connections stay for the account-regions after, within ``KEEP_IDLE_SECONDS`` and
    ``KEEP_CONNECTIONS``; the rest are closed."""
    now = time.monotonic()
    with _lock:
        done = list(_open_clients)
        del _open_clients[:]
        _role_clients.clear()  # closed clients are not handed out again
        _sessions.clear()      # nor by the sessions that hold them
        if keep_connections:
            for c in done:
                key = _endpoint_key(c)
                if key in _http_sessions:
                    _http_used[key] = now
            recent = sorted((k for k, used in _http_used.items()
                             if k in _http_sessions and now - used <= KEEP_IDLE_SECONDS),
                            key=_http_used.get, reverse=True)
            kept, held = set(), 0
            for k in recent:
                held += _idle_connections(_http_sessions[k])
                if held > KEEP_CONNECTIONS:
                    break
                kept.add(k)
        else:
            kept = set()
        dropped = [_http_sessions.pop(k) for k in list(_http_sessions) if k not in kept]
        for k in set(_http_used) - kept:
            del _http_used[k]
        keep = {id(s) for s in _http_sessions.values()}
    for c in done:
        endpoint = getattr(c, '_endpoint', None)
        if endpoint is not None and id(endpoint.http_session) in keep:
            continue  # its connections are kept; the client itself is dropped
        try:
            c.close()
        except Exception:  # closing is housekeeping; never fail a run on it
            pass
    for s in dropped:
        try:
            s.close()
        except Exception:
            pass


# -- retries (not a performance mechanism, and not switched off with it) ----------

def default_retry_mode(original):
    """botocore's ``standard`` retry mode unless configured otherwise (AWS_RETRY_MODE...)."""
    name, env, _default, kind = original
    return (name, env, RETRY_MODE, kind)


def default_max_attempts(original):
    """Up to MAX_ATTEMPTS attempts unless configured otherwise (AWS_MAX_ATTEMPTS...)."""
    name, env, _default, kind = original
    return (name, env, MAX_ATTEMPTS, kind)
