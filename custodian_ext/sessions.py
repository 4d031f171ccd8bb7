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
  credentials or a ``Config`` are not cached. Sessions, and so their
  clients, live as long as c7n keeps the session: c7n-org drops them at the
  end of every account-region.

``CUSTODIAN_EXT_PERF=0`` switches all of this off (and the per-run resource
cache, ``custodian_ext.runcache``), for comparison with stock Cloud Custodian;
it changes no check. Installed by the pack's hooks in the ``custodian`` and
``c7n-org`` programs only.

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

_lock = threading.RLock()
_loaders = {}
_INSTALLED = set()

RETRY_MODE = 'standard'
MAX_ATTEMPTS = 6  # the first try and up to five retries
# Handlers c7n registers on a session per policy (with these unique ids),
# carried over to a cached client each time it is handed out.
SESSION_HANDLERS = (('after-call.*.*', 'c7n-api-stats'),)


def enabled():
    """False when ``CUSTODIAN_EXT_PERF=0``: stock c7n behaviour, for comparison."""
    return os.environ.get('CUSTODIAN_EXT_PERF', '1').strip().lower() not in (
        '0', 'false', 'no', 'off')


def _once(name):
    with _lock:
        if name in _INSTALLED:
            return False
        _INSTALLED.add(name)
        return True


class _SearchPaths(list):
    # boto3.Session appends its own data folder to the loader's search
    # paths each time a session is made; with one loader, once is enough.
    def append(self, path):
        if path not in self:
            super().append(path)


def share_loader():
    if not _once('loader'):
        return
    import botocore.session
    from botocore.loaders import create_loader

    def shared_loader(search_path_string=None):
        with _lock:
            loader = _loaders.get(search_path_string)
            if loader is None:
                loader = create_loader(search_path_string)
                loader._search_paths = _SearchPaths(loader._search_paths)
                _loaders[search_path_string] = loader
            return loader

    botocore.session.create_loader = shared_loader


def share_models():
    """One ServiceModel and one set of generated operation methods per service model."""
    if not _once('models'):
        return
    from botocore.client import ClientCreator
    from botocore.model import ServiceModel

    models = {}    # (service name, id(json model)) -> (json model, ServiceModel)
    methods = {}   # id(ServiceModel) -> (operation methods, name mapping)
    original_methods = ClientCreator._create_methods
    original_mapping = ClientCreator._create_name_mapping

    def _load_service_model(self, service_name, api_version=None):
        json_model = self._loader.load_service_model(
            service_name, 'service-2', api_version=api_version)
        key = (service_name, id(json_model))
        with _lock:
            entry = models.get(key)
            if entry is None or entry[0] is not json_model:
                # the model dict is held here, so its id cannot be reused
                entry = models[key] = (json_model, ServiceModel(json_model,
                                                                service_name=service_name))
        return entry[1]

    def _generated(self, service_model):
        with _lock:
            entry = methods.get(id(service_model))
            if entry is None or entry[0] is not service_model:
                entry = methods[id(service_model)] = (
                    service_model, original_methods(self, service_model),
                    original_mapping(self, service_model))
        return entry

    def _create_methods(self, service_model):
        # a copy: creating-client-class handlers add to the class's attributes
        return dict(_generated(self, service_model)[1])

    def _create_name_mapping(self, service_model):
        return dict(_generated(self, service_model)[2])

    ClientCreator._load_service_model = _load_service_model
    ClientCreator._create_methods = _create_methods
    ClientCreator._create_name_mapping = _create_name_mapping


def faster_events():
    """Two pure computations botocore repeats for every session and client, done once.

    - Whether an event handler accepts ``**kwargs`` (botocore checks each
      handler it registers with ``inspect``: ~300 for every new session).
      Remembered for plain functions only, whose signature cannot change;
      bound methods and partials, made anew each time, are checked as before.
    - The aliased name of an event (``EventAliaser``, one per session and per
      client, each with an empty cache): shared by the emitters that use
      botocore's standard aliases. A pure function of the event name.
    """
    if not _once('events'):
        return
    import types
    from botocore import hooks

    original_accepts = hooks.accepts_kwargs
    accepts = {}

    def accepts_kwargs(func):
        if type(func) is not types.FunctionType:
            return original_accepts(func)
        found = accepts.get(func)
        if found is None:
            found = accepts[func] = original_accepts(func)
        return found

    hooks.accepts_kwargs = accepts_kwargs

    shared = {}
    standard = dict(hooks.EVENT_ALIASES)
    original_init = hooks.EventAliaser.__init__

    def __init__(self, event_emitter, event_aliases=None):
        original_init(self, event_emitter, event_aliases)
        if self._event_aliases == standard:
            self._alias_name_cache = shared

    hooks.EventAliaser.__init__ = __init__


_open_clients = []  # cached clients, closed by close_clients() at the end of a run


def _sync(client, session):
    """What c7n set on the session for the current policy, onto a cached client."""
    botocore_session = session._session
    client._user_agent_creator._session_user_agent_name = botocore_session.user_agent_name
    client._user_agent_creator._session_user_agent_version = \
        botocore_session.user_agent_version
    client._user_agent_creator._session_user_agent_extra = botocore_session.user_agent_extra
    source = getattr(session.events, '_emitter', session.events)
    for event, unique_id in SESSION_HANDLERS:
        client.meta.events.unregister(event, unique_id=unique_id)
        entry = source._unique_id_handlers.get(unique_id)
        if entry is not None:
            client.meta.events.register(event, entry['handler'], unique_id=unique_id)


def cache_clients():
    """One client per service, region and endpoint in each session c7n's SessionFactory makes."""
    if not _once('clients'):
        return
    import boto3.session
    from botocore.client import BaseClient
    from c7n.credentials import SessionFactory

    original_client = boto3.session.Session.client
    original_update = SessionFactory.update

    def update(self, session):
        if getattr(session, '_ext_clients', None) is None:
            session._ext_clients = {}
        return original_update(self, session)

    def client(self, service_name, region_name=None, api_version=None, use_ssl=True,
               verify=None, endpoint_url=None, aws_access_key_id=None,
               aws_secret_access_key=None, aws_session_token=None, config=None,
               aws_account_id=None):
        clients = getattr(self, '_ext_clients', None)
        simple = (clients is not None and api_version is None and config is None
                  and aws_access_key_id is None and aws_secret_access_key is None
                  and aws_session_token is None and aws_account_id is None)
        if not simple:
            return original_client(
                self, service_name, region_name=region_name, api_version=api_version,
                use_ssl=use_ssl, verify=verify, endpoint_url=endpoint_url,
                aws_access_key_id=aws_access_key_id,
                aws_secret_access_key=aws_secret_access_key,
                aws_session_token=aws_session_token, config=config,
                aws_account_id=aws_account_id)
        key = (service_name, region_name or self.region_name, use_ssl, verify, endpoint_url)
        with _lock:
            c = clients.get(key)
            if c is None:
                c = clients[key] = original_client(
                    self, service_name, region_name=region_name, use_ssl=use_ssl,
                    verify=verify, endpoint_url=endpoint_url)
                c._ext_cached = True  # its read calls may be shared (runcache.SHARED_READS)
                _open_clients.append(c)
            else:
                _sync(c, self)
        return c

    original_call = BaseClient._make_api_call

    def _make_api_call(self, operation_name, api_params):
        if not getattr(self, '_ext_cached', False):
            return original_call(self, operation_name, api_params)
        from custodian_ext.runcache import shared_read
        return shared_read(self, operation_name, api_params,
                           lambda: original_call(self, operation_name, api_params))

    SessionFactory.update = update
    boto3.session.Session.client = client
    BaseClient._make_api_call = _make_api_call


_base_sessions = {}  # profile -> the boto3 session c7n-org assumes roles from


def share_base_session():
    """One session per profile to call sts:AssumeRole from, instead of one per account-region.

    c7n's ``SessionFactory`` builds a new boto3 session with the caller's
    credentials for every assume-role session it makes, only to call
    AssumeRole with it (and to renew the role's credentials). The caller's
    session is the same for every account-region of a c7n-org run.
    """
    if not _once('base-session'):
        return
    from c7n import credentials

    original = credentials.SessionFactory.__call__

    def __call__(self, assume=True, region=None):
        if not (self.assume_role and assume):
            return original(self, assume=assume, region=region)
        with _lock:
            base = _base_sessions.get(self.profile)
            if base is None:
                base = _base_sessions[self.profile] = credentials.Session(
                    profile_name=self.profile)
                base._ext_clients = {}  # its STS client is reused too
        session = credentials.assumed_session(
            self.assume_role, self.session_name, self.session_policy, base,
            region or self.region, self.external_id)
        return self.update(session)

    credentials.SessionFactory.__call__ = __call__


def load_available_once():
    """c7n-org loads every resource module in each account-region; after the first, once is all."""
    if not _once('load-available'):
        return
    from c7n_org import cli as org_cli
    original = org_cli.load_available
    loaded = []

    def load_available(resources=True):
        # the modules stay loaded; reloading re-notifies every resource type to
        # every subscriber (the pack registers its filters through them)
        if not (loaded and resources):
            result = original(resources)
            if resources:
                loaded.append(result)
            return result
        return loaded[0]

    org_cli.load_available = load_available


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


def warm_before_fork():
    """``c7n-org run``: warm() once its policies are loaded, before any worker starts."""
    if not _once('warm'):
        return
    from c7n_org import cli as org_cli
    from custodian_ext.hooks import _c7n_org_command
    original = org_cli.init

    def init(*args, **kw):
        result = original(*args, **kw)
        if _c7n_org_command() == 'run':
            warm(result[1])
        return result

    init.__wrapped__ = original  # the pack's own init hook reads the signature
    org_cli.init = init


def close_clients():
    """Close the HTTP connections of the clients cached so far (end of an account-region)."""
    with _lock:
        done = list(_open_clients)
        del _open_clients[:]
    for c in done:
        try:
            c.close()
        except Exception:  # closing is housekeeping; never fail a run on it
            pass


def retry_defaults():
    """botocore's standard retry mode and MAX_ATTEMPTS, unless configured otherwise."""
    if not _once('retries'):
        return
    from botocore import configprovider
    table = configprovider.BOTOCORE_DEFAUT_SESSION_VARIABLES
    name, env, _default, kind = table['retry_mode']
    table['retry_mode'] = (name, env, RETRY_MODE, kind)
    name, env, _default, kind = table['max_attempts']
    table['max_attempts'] = (name, env, MAX_ATTEMPTS, kind)


def install(c7n_org=False):
    """The performance layer (unless CUSTODIAN_EXT_PERF=0) and the retry defaults."""
    retry_defaults()
    if not enabled():
        return
    share_loader()
    share_models()
    faster_events()
    cache_clients()
    share_base_session()
    from custodian_ext import runcache
    runcache.install(c7n_org=c7n_org)
    if c7n_org:
        load_available_once()
        warm_before_fork()
