"""custodian_ext.perf: the performance layer's session and client sharing, installed as the
``custodian`` program installs it (the ``pack_patches`` fixture)."""

import threading

import boto3
import pytest


def test_sessions_share_one_loader_and_its_parsed_models():
    a, b = boto3.Session(region_name='us-east-1'), boto3.Session(region_name='eu-west-1')
    loader = a._session.get_component('data_loader')
    assert b._session.get_component('data_loader') is loader
    # boto3 adds its data folder once per session; the shared list keeps one copy
    assert len(loader.search_paths) == len(set(loader.search_paths))
    model = loader.load_service_model('ec2', 'service-2')
    assert b._session.get_component('data_loader').load_service_model('ec2', 'service-2') is model
    # clients still work as before, each with its own region
    assert a.client('ec2', endpoint_url='http://127.0.0.1:1').meta.region_name == 'us-east-1'
    assert b.client('ec2', endpoint_url='http://127.0.0.1:1').meta.region_name == 'eu-west-1'


def probe():
    import boto3
    from botocore.config import Config
    from c7n.credentials import SessionFactory

    calls = []
    factory = SessionFactory('us-east-1')
    factory.policy_name = 'first-policy'
    factory.set_subscribers([lambda s: s.events.register(
        'after-call.*.*', lambda **kw: calls.append(1), unique_id='c7n-api-stats')])
    session = factory()
    ec2 = session.client('ec2', endpoint_url='http://127.0.0.1:9')
    again = session.client('ec2', endpoint_url='http://127.0.0.1:9')
    west = session.client('ec2', region_name='us-west-2', endpoint_url='http://127.0.0.1:9')
    configured = session.client('ec2', endpoint_url='http://127.0.0.1:9', config=Config())
    other = factory().client('ec2', endpoint_url='http://127.0.0.1:9')
    plain = boto3.Session(region_name='us-east-1').client('ec2', endpoint_url='http://127.0.0.1:9')
    plain_again = boto3.Session(region_name='us-east-1').client('ec2', endpoint_url='http://127.0.0.1:9')
    factory.policy_name = 'second-policy'
    factory.update(session)
    handed = session.client('ec2', endpoint_url='http://127.0.0.1:9')
    return ({
        'cached': ec2 is again and handed is ec2,
        'per_region': west is not ec2,
        'config_not_cached': configured is not ec2,
        # another session of the same credentials: the same client (one identity)
        'shared_by_sessions_of_one_identity': other is ec2,
        'plain_sessions_not_cached': plain is not plain_again,
        'model_shared': other.meta.service_model is ec2.meta.service_model
                        and plain.meta.service_model is ec2.meta.service_model,
        'user_agent': handed._user_agent_creator._session_user_agent_extra,
        'methods': hasattr(plain, 'describe_instances') and hasattr(handed, 'run_instances'),
        'stats_handler':
            handed.meta.events._emitter._unique_id_handlers.get('c7n-api-stats') is not None
            or handed.meta.events._unique_id_handlers.get('c7n-api-stats') is not None,
    })


def test_performance_layer_caches_clients_and_shares_models(monkeypatch):
    for k, v in (('AWS_ACCESS_KEY_ID', 'x'), ('AWS_SECRET_ACCESS_KEY', 'x')):
        monkeypatch.setenv(k, v)
    found = probe()
    assert found.pop('user_agent') == 'c7n/policy#second-policy'
    assert found == {k: True for k in found}, found


@pytest.mark.program(None)
def test_without_the_patches_nothing_is_shared():
    a, b = boto3.Session(region_name='us-east-1'), boto3.Session(region_name='eu-west-1')
    assert b._session.get_component('data_loader') is not a._session.get_component('data_loader')


@pytest.mark.program('c7n-org')
def test_an_account_regions_policy_threads_share_its_clients_each_with_its_own_policy(aws):
    """c7n-org: the sessions of one assumed role (one account-region) share their clients,
    made once; the user agent and c7n's api-stats handler a call carries are those of the
    policy running on the calling thread. The next account-region makes its own."""
    from c7n.credentials import SessionFactory
    from custodian_ext import perf

    role = f'arn:aws:iam::{aws.id}:role/Audit'
    seen, stats = {}, {'first-policy': [], 'second-policy': []}
    ready = threading.Barrier(2)

    def policy(name):
        client = _policy_factory(name, stats, role)().client('iam')
        ready.wait(timeout=30)  # both policies have synced the client before either calls
        client.list_users()
        client.list_roles()
        seen[name] = (client, client._user_agent_creator.to_string())

    _on_threads(policy, list(stats))
    (first, ua1), (second, ua2) = seen['first-policy'], seen['second-policy']
    assert first is second  # one client for both policies' sessions
    assert 'c7n/policy#first-policy' in ua1 and 'c7n/policy#second-policy' in ua2
    assert stats == {'first-policy': ['ListUsers', 'ListRoles'],
                     'second-policy': ['ListUsers', 'ListRoles']}
    # a thread that runs no policy (c7n's own worker threads) gets what was set last
    other = []
    t = threading.Thread(target=lambda: other.append(first._user_agent_creator.to_string()))
    t.start()
    t.join()
    assert 'c7n/policy#' in other[0]
    # the end of the account-region: its clients are not reused
    perf.forget_assumed_roles()
    factory = SessionFactory('us-east-1', assume_role=role)
    assert factory().client('iam') is not first


@pytest.mark.program('c7n-org')
def test_c7n_pool_threads_call_as_the_policy_that_submitted_the_work(aws):
    """c7n reads resource details on its own thread pools (``executor_factory``: S3 bucket
    subdocuments, snapshot attributes). Their calls on a shared client carry the user agent
    and count in the api-stats of the policy that submitted them, not of whichever policy
    synced the client last."""
    from c7n.element import Element
    from c7n.manager import ResourceManager

    role = f'arn:aws:iam::{aws.id}:role/Audit'
    seen, stats = {}, {'first-policy': [], 'second-policy': []}
    synced = threading.Barrier(2)
    pools = {'first-policy': ResourceManager.executor_factory,
             'second-policy': Element.executor_factory}

    def policy(name):
        client = _policy_factory(name, stats, role)().client('iam')
        synced.wait(timeout=30)  # both synced: "the last" is one of them, not this one's own

        def detail(_):
            client.list_users()
            return client._user_agent_creator.to_string()
        with pools[name](max_workers=2) as pool:
            seen[name] = list(pool.map(detail, range(2))) + \
                [pool.submit(detail, None).result()]

    _on_threads(policy, list(stats))
    for name, agents in seen.items():
        assert len(agents) == 3 and all(f'c7n/policy#{name}' in ua for ua in agents), agents
    assert stats == {'first-policy': ['ListUsers'] * 3, 'second-policy': ['ListUsers'] * 3}


def test_whether_a_handler_takes_kwargs_is_its_functions_answer():
    """botocore refuses a handler without **kwargs; the answer for a bound method or a
    partial is its function's, remembered; other callables are asked each time."""
    import functools
    from botocore import hooks
    from custodian_ext import perf

    class Handlers:
        def open(self, **kwargs):
            pass

        def closed(self, event_name):
            pass

    class Callable:
        def __call__(self, event_name):
            pass

    def takes(a, **kw):
        pass

    def refuses(a, b):
        pass

    one, two = Handlers(), Handlers()
    assert hooks.accepts_kwargs(one.open) and hooks.accepts_kwargs(two.open)
    assert not hooks.accepts_kwargs(one.closed)
    assert hooks.accepts_kwargs(functools.partial(takes, 1))
    assert not hooks.accepts_kwargs(functools.partial(refuses, 1))
    assert hooks.accepts_kwargs(functools.partial(one.open, x=1))
    assert not hooks.accepts_kwargs(Callable())
    # botocore answers with the name of the **kwargs parameter, or None
    assert perf._accepts[Handlers.open] == 'kwargs' and perf._accepts[Handlers.closed] is None
    assert Handlers.closed in perf._accepts and perf._accepts[refuses] is None
    with pytest.raises(ValueError):  # botocore still refuses what it refused
        hooks.HierarchicalEmitter().register('before-call', one.closed)


def test_sessions_of_the_callers_own_credentials_share_their_clients(monkeypatch):
    """custodian run: one session per policy thread and region, all of one identity, share
    their clients; other credentials get their own; each thread's policy its user agent."""
    from c7n.credentials import SessionFactory

    def client(policy, key='AKIDONE'):
        monkeypatch.setenv('AWS_ACCESS_KEY_ID', key)
        factory = SessionFactory('us-east-1')
        factory.policy_name = policy
        return factory().client('ec2', endpoint_url='http://127.0.0.1:9')

    monkeypatch.setenv('AWS_SECRET_ACCESS_KEY', 'x')
    first = client('first-policy')
    made = []
    t = threading.Thread(target=lambda: made.append(client('second-policy')))
    t.start()
    t.join()
    assert made[0] is first
    assert 'c7n/policy#first-policy' in first._user_agent_creator.to_string()
    assert client('third-policy', key='AKIDTWO') is not first


def _policy_factory(name, stats, role=None):
    """A c7n session factory for policy ``name`` (assuming ``role``, as c7n-org does),
    recording its calls in ``stats[name]`` as c7n's api-stats subscriber does."""
    from c7n.credentials import SessionFactory
    factory = SessionFactory('us-east-1', assume_role=role)
    factory.policy_name = name
    factory.set_subscribers([lambda s: s.events.register(
        'after-call.*.*', lambda **kw: stats[name].append(kw['model'].name),
        unique_id='c7n-api-stats')])
    return factory


def _called(client, operation):
    """What botocore emits after ``client`` made ``operation``."""
    client.meta.events.emit(f'after-call.ec2.{operation}', http_response=None, parsed={},
                            model=client.meta.service_model.operation_model(operation),
                            context={})


def _on_threads(target, names):
    threads = [threading.Thread(target=target, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)


def test_policy_threads_share_one_session_per_identity_and_region(monkeypatch):
    """c7n keeps a session per thread and region, and the pack runs policies on threads:
    the threads of one identity get one session per region, on which each thread's policy
    keeps its own user agent and api-stats handler (set and removed per policy, as c7n's
    ``ExecutionContext`` does), on clients cached or not."""
    from botocore.config import Config
    from c7n.credentials import SessionFactory

    monkeypatch.setenv('AWS_ACCESS_KEY_ID', 'AKIDONE')
    monkeypatch.setenv('AWS_SECRET_ACCESS_KEY', 'x')
    seen, stats = {}, {'first-policy': [], 'second-policy': []}
    ready, done, after = threading.Barrier(2), threading.Barrier(2), threading.Barrier(2)

    def policy(name):
        session = _policy_factory(name, stats)()
        ready.wait(timeout=30)  # both policies have registered before either reads
        cached = session.client('ec2', endpoint_url='http://127.0.0.1:9')
        configured = session.client('ec2', endpoint_url='http://127.0.0.1:9', config=Config())
        for client in (cached, configured):
            _called(client, 'DescribeRegions')
        seen[name] = (session, cached._user_agent_creator.to_string(),
                      configured._user_agent_creator.to_string())
        done.wait(timeout=30)
        if name == 'first-policy':  # the end of its policy: c7n removes its handler
            session.events.unregister('after-call.*.*', unique_id='c7n-api-stats')
        after.wait(timeout=30)
        if name == 'second-policy':  # ...not the other policy's
            _called(session.client('ec2', endpoint_url='http://127.0.0.1:9'), 'DescribeVpcs')

    _on_threads(policy, stats)
    (first, ua1, cua1), (second, ua2, cua2) = seen['first-policy'], seen['second-policy']
    assert first is second
    assert 'c7n/policy#first-policy' in ua1 and 'c7n/policy#first-policy' in cua1
    assert 'c7n/policy#second-policy' in ua2 and 'c7n/policy#second-policy' in cua2
    assert stats == {'first-policy': ['DescribeRegions'] * 2,
                     'second-policy': ['DescribeRegions'] * 2 + ['DescribeVpcs']}
    # another region, or other credentials, is another session
    assert SessionFactory('us-west-2')() is not first
    monkeypatch.setenv('AWS_ACCESS_KEY_ID', 'AKIDTWO')
    assert SessionFactory('us-east-1')() is not first


def test_a_call_carried_to_a_helper_thread_is_its_policys(monkeypatch):
    """An activity read makes its lookups on helper threads
    (``event_history.lookups_at_once``): their calls still carry the policy's user agent and
    count in its api-stats (``perf.carried``), although another policy set its own on the
    shared client after it (a helper thread without it gets the last one set)."""
    from custodian_ext import perf

    monkeypatch.setenv('AWS_ACCESS_KEY_ID', 'AKIDCARRY')
    monkeypatch.setenv('AWS_SECRET_ACCESS_KEY', 'x')
    stats = {'first-policy': [], 'second-policy': []}
    seen = {}
    first_ready, second_ready, done = (threading.Barrier(2) for _ in range(3))

    def policy(name):
        factory = _policy_factory(name, stats)
        if name == 'second-policy':
            first_ready.wait(timeout=30)
        client = factory().client('ec2', endpoint_url='http://127.0.0.1:9')
        if name == 'first-policy':
            first_ready.wait(timeout=30)
        second_ready.wait(timeout=30)  # the second policy's settings are the last set
        if name == 'first-policy':
            def call():
                _called(client, 'DescribeVpcs')
                return client._user_agent_creator.to_string()
            for how, fn in (('carried', perf.carried(call)), ('plain', call)):
                out = []
                helper = threading.Thread(target=lambda: out.append(fn()))
                helper.start()
                helper.join(timeout=30)
                seen[how] = out[0]
        done.wait(timeout=30)

    _on_threads(policy, stats)
    assert 'c7n/policy#first-policy' in seen['carried']
    assert 'c7n/policy#second-policy' in seen['plain']  # what carried prevents
    assert stats == {'first-policy': ['DescribeVpcs'], 'second-policy': ['DescribeVpcs']}


def test_variables_expand_as_c7n_expands_them():
    """The performance layer's format_string_values gives c7n's own result for every pack
    policy and the samples of its settings, and for the edge cases c7n's recursion meets."""
    import glob
    import yaml
    from c7n.varfmt import VarFormat
    from custodian_ext import patches
    from custodian_ext.patches import table
    from custodian_ext.settings import samples
    row, = [p for p in table.TABLE if p.target == 'c7n.utils:format_string_values']
    stock = patches.original('c7n.utils:format_string_values')
    fast = row.wrapper(stock)
    variables = dict(samples(), account_id='123456789012', region='eu-west-1',
                     account='prod', now='2026-12-02T00:00:00+00:00')
    policies = [p for f in sorted(glob.glob('policies/**/*.yml', recursive=True))
                for p in (yaml.safe_load(open(f)) or {}).get('policies', [])]
    assert len(policies) > 100
    for p in policies:
        assert fast(p, formatter=VarFormat().format, **variables) == \
            stock(p, formatter=VarFormat().format, **variables), p['name']
    odd = {'a': ['{region}', '{missing}', 'plain', 3, None, {'b': '{{literal}}'}],
           'c': '{account_id}', 'd': ('tuple', '{region}')}
    assert fast(odd, region='x', account_id=1) == stock(odd, region='x', account_id=1)
    assert fast(odd, formatter=VarFormat().format, region='x', account_id=1) == \
        stock(odd, formatter=VarFormat().format, region='x', account_id=1)
    for broken in ('a } b', '{0', '{region!z}'):
        with pytest.raises(ValueError):
            stock({'k': broken}, region='x')
        with pytest.raises(ValueError):
            fast({'k': broken}, region='x')
    plain = {'a': ['plain', {'b': 'x'}]}
    copy = fast(plain)  # new containers, as c7n makes: the policy's own data is not shared
    assert copy == plain and copy is not plain and copy['a'] is not plain['a'] and \
        copy['a'][1] is not plain['a'][1]


def _opened(client):
    """How many connections the client's endpoint pool has opened so far."""
    manager = client._endpoint.http_session._manager
    return sum(pool.num_connections for pool in manager.pools._container.values())


@pytest.mark.program('c7n-org')
def test_a_c7n_org_worker_keeps_its_endpoints_connections_for_the_next_account_regions(
        aws, monkeypatch):
    """The end of an account-region drops its clients, not their endpoints' open connections:
    the next account-region's client (new credentials, new client) sends on them. Endpoints
    idle too long, or beyond the most recent ones' ``KEEP_CONNECTIONS``, are closed; the end
    of a run closes all."""
    from c7n.credentials import SessionFactory
    from custodian_ext import perf, runcache

    role = f'arn:aws:iam::{aws.id}:role/Audit'
    seen = []

    def account_region(services=('iam',)):
        session = SessionFactory('us-east-1', assume_role=role)()
        for service in services:
            client = session.client(service)
            client.list_users() if service == 'iam' else client.describe_vpcs()
            seen.append((service, client, client._endpoint.http_session, _opened(client)))

    runcache.account_region_scope(account_region)()
    runcache.account_region_scope(account_region)()
    (_, first, pool, opened), (_, second, pool_again, opened_again) = seen
    assert second is not first  # the account-region's own client and credentials...
    assert pool_again is pool and opened == opened_again == 1  # ...on the kept connection

    # bounded: only the most recently used endpoints' connections, up to KEEP_CONNECTIONS
    monkeypatch.setattr(perf, 'KEEP_CONNECTIONS', 1)
    seen.clear()
    runcache.account_region_scope(account_region)(('iam', 'ec2'))
    runcache.account_region_scope(account_region)(('ec2', 'iam'))
    by = {(i // 2, s): p for i, (s, _, p, _) in enumerate(seen)}
    assert len(perf._http_sessions) == 1
    assert sum(by[(1, s)] is by[(0, s)] for s in ('iam', 'ec2')) == 1, by
    # and not when idle for longer than KEEP_IDLE_SECONDS
    monkeypatch.setattr(perf, 'KEEP_IDLE_SECONDS', -1)
    runcache.account_region_scope(account_region)()
    assert perf._http_sessions == {}
    # the end of a run closes every connection, kept or not
    monkeypatch.setattr(perf, 'KEEP_IDLE_SECONDS', 60)
    runcache.account_region_scope(account_region)()
    assert perf._http_sessions
    perf.close_clients()
    assert perf._http_sessions == {} and perf._http_used == {}


def test_a_forked_process_never_uses_its_parents_connections(aws):
    """c7n-org resolves the accounts' regions (with profiles: through cached clients) before
    it forks its workers; a worker that sent on its parent's pooled socket would share it
    with its parent and the other workers, and read their answers."""
    import json
    import os
    from c7n.credentials import SessionFactory
    from custodian_ext import perf

    SessionFactory('us-east-1')().client('ec2').describe_regions()
    assert perf._http_sessions and perf._open_clients and perf._sessions
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report what it inherited, and leave without pytest's cleanup
        try:
            os.write(write, json.dumps([len(perf._http_sessions), len(perf._open_clients),
                                        len(perf._sessions)]).encode())
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read) as fh:
        assert json.loads(fh.read()) == [0, 0, 0]
    assert perf._http_sessions  # the parent's are its own still


@pytest.fixture(scope='module')
def tls_emulator():
    """The emulator over HTTPS, as AWS's endpoints: its CA bundle is botocore's with the
    emulator's certificate added (custodian_ext_dev/emulator/tls.py)."""
    from custodian_ext_dev.emulator import Emulator
    with Emulator(tls=True) as emu:
        yield emu


def _https_calls(emu, monkeypatch, bundle):
    """Five clients of separate sessions, each making two calls at once (two connections
    each); returns (CA bundle loads, connections opened)."""
    import ssl
    loads = []
    original = ssl.SSLContext.load_verify_locations

    def counted(self, *a, **kw):
        loads.append(a)
        return original(self, *a, **kw)
    monkeypatch.setattr(ssl.SSLContext, 'load_verify_locations', counted)
    for k, v in (('AWS_ACCESS_KEY_ID', 'testing'), ('AWS_SECRET_ACCESS_KEY', 'testing'),
                 ('AWS_ENDPOINT_URL', emu.url), ('AWS_CA_BUNDLE', bundle)):
        monkeypatch.setenv(k, v)
    clients = [boto3.Session(region_name='us-east-1').client('sts') for _ in range(5)]
    barrier = threading.Barrier(2)

    def call(client):
        barrier.wait(timeout=30)
        client.get_caller_identity()
    for client in clients:
        _on_threads(lambda _, c=client: call(c), range(2))
    return len(loads), sum(_opened(c) for c in clients)


def test_https_connections_load_the_ca_bundle_once_and_still_verify(tls_emulator, monkeypatch):
    """urllib3 loads botocore's CA bundle into the SSL context for every new connection
    (25-40 ms of CPU each with OpenSSL 3); the pack loads it once per process, and every
    connection still verifies the server against it."""
    loads, opened = _https_calls(tls_emulator, monkeypatch, tls_emulator.ca_bundle)
    assert opened >= 6 and loads == 1, (opened, loads)
    from botocore.exceptions import SSLError
    from botocore.httpsession import DEFAULT_CA_BUNDLE
    monkeypatch.setenv('AWS_CA_BUNDLE', DEFAULT_CA_BUNDLE)  # without the emulator's certificate
    with pytest.raises(SSLError, match='CERTIFICATE_VERIFY_FAILED'):
        boto3.Session(region_name='us-east-1').client('sts').get_caller_identity()


@pytest.mark.program(None)
def test_stock_botocore_loads_the_ca_bundle_for_each_connection(tls_emulator, monkeypatch):
    loads, opened = _https_calls(tls_emulator, monkeypatch, tls_emulator.ca_bundle)
    assert opened >= 6 and loads == opened, (opened, loads)


def test_a_pool_asking_for_another_bundle_never_adds_it_to_the_shared_context(tls_emulator,
                                                                              monkeypatch):
    """Should a session's CA bundle change after its context was shared (botocore never does
    it), that pool gets a context of its own: the shared one keeps trusting only its bundle."""
    from botocore.httpsession import DEFAULT_CA_BUNDLE, URLLib3Session
    session = URLLib3Session(verify=tls_emulator.ca_bundle)
    pool = session._manager.connection_from_url(tls_emulator.url)
    shared = pool.conn_kw['ssl_context']
    session._setup_ssl_cert(pool, tls_emulator.url, tls_emulator.ca_bundle)
    assert pool.ca_certs is None and shared._ext_ca == tls_emulator.ca_bundle
    other = URLLib3Session(verify=tls_emulator.ca_bundle)._manager.connection_from_url(
        tls_emulator.url)
    assert other.conn_kw['ssl_context'] is shared
    session._setup_ssl_cert(other, tls_emulator.url, DEFAULT_CA_BUNDLE)
    assert other.conn_kw['ssl_context'] is not shared and other.ca_certs == DEFAULT_CA_BUNDLE
