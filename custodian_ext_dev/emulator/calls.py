"""Count the API calls the emulator serves, and inject throttling (benchmarks and tests).

Not AWS behaviour: tooling for measuring the pack against the emulator.

- Counting: every AWS request that reaches the emulator is counted by the
  account that signed it (the account its access key belongs to), region,
  service, operation and HTTP method and path, at the emulator's entry
  point, so the requests the pack's extensions answer themselves (Lightsail)
  count too. moto's own ``/moto-api/recorder/`` records requests without
  their account and misses those. The operation is named from the botocore
  service model, as AWS would: ``Action`` (query protocols), ``X-Amz-Target``
  (JSON protocols), or the operation whose HTTP method and URI template
  match (REST protocols, S3 included).
  ``GET /moto-api/custodian-ext/calls`` answers ``{"calls": [{"account",
  "region", "service", "operation", "served", "throttled", "faulted"}...]}``;
  ``POST /moto-api/custodian-ext/calls/reset`` starts again from zero.
- Throttling: ``POST /moto-api/custodian-ext/throttle`` with
  ``{"every": k}`` answers every k-th AWS request with the throttling error
  AWS sends for that service's protocol (``Throttling`` for query APIs,
  ``RequestLimitExceeded`` for EC2, ``ThrottlingException`` for JSON APIs,
  ``TooManyRequestsException`` (429) for REST-JSON, ``LimitExceededException``
  (429) for Security Hub, ``SlowDown`` (503) for S3); ``{"every": 0}`` stops.
  A request identical to one just throttled (same key, method, URL and body:
  the client's retry) is throttled again until it has been refused ``times``
  times in a row (``{"every": k, "times": t}``, default 1), then served:
  with ``times`` 1, each call is throttled at most once and a client that
  retries once completes; with a ``times`` above the client's attempts, the
  call fails with the throttling error.
- Faults (throttling, server errors, timeouts, access denied), seeded and per
  logical call of a Custodian policy: ``POST /moto-api/custodian-ext/faults``;
  see ``custodian_ext_dev.emulator.faults``.
- Latency and rate limits of real AWS (off by default): ``latency.py``, through
  ``POST /moto-api/custodian-ext/latency`` here; requests it refuses for their
  rate are counted as ``rate_limited``, and ``GET /moto-api/custodian-ext/requests``
  lists every request with its latency.
"""
import collections
import hashlib
import io
import json
import os
import re
import threading
import time
import urllib.parse
import uuid

from custodian_ext_dev.emulator import faults, latency

PREFIX = '/moto-api/custodian-ext/'
_lock = threading.Lock()
# (account, region, service, method, path, query keys, op hint) -> n
_counts = collections.Counter()
_throttled = collections.Counter()  # same key -> n
_faulted = collections.Counter()    # same key -> n (custodian_ext_dev.emulator.faults)
_rate_limited = collections.Counter()  # same key -> n refused by latency.py's rate limits
_op_cache = {}
_throttle = {'every': 0, 'times': 1, 'seen': 0, 'pending': {}}
_APPLIED = False
# Other emulator modules' control endpoints: POST PREFIX + name, JSON body -> JSON answer.
CONTROL = {}

# Signing names that are not botocore service names.
SERVICE_NAMES = {'tagging': 'resourcegroupstaggingapi', 'monitoring': 'cloudwatch',
                 'execute-api': 'apigateway', 'states': 'stepfunctions', 'email': 'ses',
                 'elasticloadbalancing': 'elbv2', 'es': 'opensearch'}
_CREDENTIAL = re.compile(r'Credential=([^/,\s]+)/[^/]+/([^/]+)/([^/]+)/')


def _model(signing_name):
    return _models(SERVICE_NAMES.get(signing_name, signing_name))


_model_cache = {}


def _models(service):
    if service not in _model_cache:
        import botocore.session
        try:
            _model_cache[service] = botocore.session.get_session().get_service_model(service)
        except Exception:
            _model_cache[service] = None
    return _model_cache[service]


def _templates(model):
    """[(method, path regex, query keys it needs, literal length, operation)] of a REST model."""
    key = ('templates', model.service_name)
    if key not in _model_cache:
        out = []
        for name in model.operation_names:
            op = model.operation_model(name)
            http = op.http
            uri = http.get('requestUri', '/')
            path, _, query = uri.partition('?')
            keys = [q.split('=')[0] for q in query.split('&') if q]
            # required query-string members tell apart operations on one URI template
            # (S3: UploadPart and AbortMultipartUpload need uploadId)
            shape = op.input_shape
            for member in (shape.required_members if shape is not None else ()):
                m = shape.members[member]
                if m.serialization.get('location') == 'querystring':
                    keys.append(m.serialization.get('name', member))
            literal = len(re.sub(r'\{[^}]+\}', '', path))
            out.append((http.get('method', 'POST'), _uri_regex(path), tuple(keys), literal,
                        name))
        _model_cache[key] = out
    return _model_cache[key]


def _uri_regex(path):
    """A URI template (``/{Bucket}/{Key+}``) as a regex: ``{x}`` one segment, ``{x+}`` any."""
    out, pos = '', 0
    for m in re.finditer(r'\{([^}]+)\}', path):
        out += re.escape(path[pos:m.start()])
        out += '.+' if m.group(1).endswith('+') else '[^/]+'
        pos = m.end()
    out += re.escape(path[pos:])
    return re.compile('^' + out.rstrip('/') + '/?$')


def operation(service, method, path, query_keys, hint):
    """The AWS operation of a request, named from botocore's service model."""
    if hint:
        return hint
    model = _model(service)
    if model is None:
        return '?'
    best = None
    for m, regex, keys, literal, name in _templates(model):
        if m != method or not regex.match(path or '/') or not set(keys) <= set(query_keys):
            continue
        score = (len(keys), literal)
        if best is None or score > best[0]:
            best = (score, name)
    return best[1] if best else '?'


def _hint(environ, body):
    """The operation named by the request itself: X-Amz-Target, x-id or Action."""
    target = environ.get('HTTP_X_AMZ_TARGET')
    if target:
        return target.rsplit('.', 1)[-1]
    # REST operations sharing one URI template (S3 PutObject/CopyObject) carry ?x-id=<operation>.
    x_id = urllib.parse.parse_qs(environ.get('QUERY_STRING') or '').get('x-id')
    if x_id:
        return x_id[0]
    for source in (environ.get('QUERY_STRING') or '',
                   body.decode('utf-8', 'replace') if body else ''):
        action = urllib.parse.parse_qs(source).get('Action')
        if action:
            return action[0]
    return ''


def _protocol(service):
    """The protocol botocore speaks to ``service`` (models listing several, such as
    ``smithy-rpc-v2-cbor`` and ``json``, resolve to the one the client uses)."""
    model = _model(service)
    if model is None:
        return 'query'
    return getattr(model, 'resolved_protocol', None) or model.metadata.get('protocol', 'query')


def throttling_response(service):
    """(status, headers, body) of AWS's throttling error for ``service``'s protocol."""
    request_id = str(uuid.uuid4())
    protocol = _protocol(service)
    if protocol == 'ec2':
        body = (f'<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error>'
                f'<Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message>'
                f'</Error></Errors><RequestID>{request_id}</RequestID></Response>')
        return '503 Service Unavailable', [('Content-Type', 'text/xml')], body
    if protocol == 'json':
        body = json.dumps({'__type': 'ThrottlingException', 'message': 'Rate exceeded'})
        return '400 Bad Request', [('Content-Type', 'application/x-amz-json-1.1'),
                                   ('x-amzn-RequestId', request_id)], body
    if service == 'securityhub':
        # Security Hub answers its throttling limits with LimitExceededException (429)
        body = json.dumps({'Message': 'Rate exceeded'})
        return '429 Too Many Requests', [('Content-Type', 'application/json'),
                                         ('x-amzn-ErrorType', 'LimitExceededException'),
                                         ('x-amzn-RequestId', request_id)], body
    if protocol == 'rest-json':
        body = json.dumps({'message': 'Rate exceeded', 'Type': 'User',
                           'Reason': 'CallerRateLimitExceeded'})
        return '429 Too Many Requests', [('Content-Type', 'application/json'),
                                         ('x-amzn-ErrorType', 'TooManyRequestsException'),
                                         ('x-amzn-RequestId', request_id)], body
    if protocol == 'rest-xml':
        body = (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
                f'<Message>Please reduce your request rate.</Message>'
                f'<RequestId>{request_id}</RequestId></Error>')
        return '503 Slow Down', [('Content-Type', 'application/xml')], body
    body = (f'<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code>'
            f'<Message>Rate exceeded</Message></Error><RequestId>{request_id}</RequestId>'
            f'</ErrorResponse>')
    return '400 Bad Request', [('Content-Type', 'text/xml')], body


def calls():
    """The counted calls, one entry per account, region, service and operation."""
    with _lock:
        served, throttled = dict(_counts), dict(_throttled)
        limited = dict(_rate_limited)
        faulted = dict(_faulted)
    merged = collections.Counter()
    merged_throttled = collections.Counter()
    merged_limited = collections.Counter()
    merged_faulted = collections.Counter()
    for source, target in ((served, merged), (throttled, merged_throttled),
                           (limited, merged_limited), (faulted, merged_faulted)):
        for key, n in source.items():
            target[_resolve(key)] += n
    keys = sorted(set(merged) | set(merged_throttled) | set(merged_limited)
                  | set(merged_faulted))
    return [{'account': a, 'region': r, 'service': s, 'operation': o,
             'served': merged.get((a, r, s, o), 0),
             'throttled': merged_throttled.get((a, r, s, o), 0),
             'rate_limited': merged_limited.get((a, r, s, o), 0),
             'faulted': merged_faulted.get((a, r, s, o), 0)}
            for a, r, s, o in keys]


def reset():
    with _lock:
        _counts.clear()
        _throttled.clear()
        _faulted.clear()
        _rate_limited.clear()
        _throttle['seen'] = 0
        _throttle['pending'] = {}
    latency.reset_log()


def _resolve(key):
    """(account, region, service, operation) of a counting key."""
    account, region, service, method, path, keys, hint = key
    op = _op_cache.get(key)
    if op is None:
        op = _op_cache[key] = operation(service, method, path, keys, hint)
    return account, region, SERVICE_NAMES.get(service, service), op


def _control(environ, start_response):
    path = environ.get('PATH_INFO', '')
    method = environ.get('REQUEST_METHOD', 'GET')
    length = int(environ.get('CONTENT_LENGTH') or 0)
    body = environ['wsgi.input'].read(length) if length else b''
    if path == PREFIX + 'calls' and method == 'GET':
        payload = {'calls': calls()}
    elif path == PREFIX + 'calls/reset' and method == 'POST':
        reset()
        payload = {'reset': True}
    elif path == PREFIX + 'latency' and method == 'POST':
        payload = latency.configure(json.loads(body or b'{}') or {})
    elif path == PREFIX + 'latency' and method == 'GET':
        payload = latency.describe()
    elif path == PREFIX + 'requests' and method == 'GET':
        payload = {'requests': latency.entries(_resolve)}
    elif path == PREFIX + 'throttle' and method == 'POST':
        options = json.loads(body or b'{}') or {}
        every = max(int(options.get('every') or 0), 0)
        times = max(int(options.get('times') or 1), 1)
        with _lock:
            _throttle.update(every=every, times=times, seen=0, pending={})
        payload = {'every': every, 'times': times}
    elif path == PREFIX + 'faults' and method == 'POST':
        try:
            payload = faults.configure(json.loads(body or b'{}') or {})
        except (ValueError, TypeError, AttributeError) as e:
            start_response('400 Bad Request', [('Content-Type', 'application/json')])
            return [json.dumps({'error': str(e)}).encode()]
    elif path == PREFIX + 'faults' and method == 'GET':
        payload = faults.report()
    elif method == 'POST' and path[len(PREFIX):] in CONTROL:
        payload = CONTROL[path[len(PREFIX):]](json.loads(body or b'{}') or {})
    else:
        start_response('404 Not Found', [('Content-Type', 'application/json')])
        return [b'{"error": "unknown custodian-ext emulator endpoint"}']
    data = json.dumps(payload).encode()
    start_response('200 OK', [('Content-Type', 'application/json'),
                              ('Content-Length', str(len(data)))])
    return [data]


# -- client side (benchmarks and tests) ---------------------------------------------

def request(url, path, body=None):
    """GET (no body) or POST one of the emulator's control endpoints; its JSON answer."""
    return _request(url, path, body)


def _request(url, path, body=None):
    import urllib.request
    from custodian_ext_dev.emulator import assert_loopback
    assert_loopback(url)
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url + PREFIX + path, data=data,
                                 method='GET' if body is None else 'POST')
    context = None
    if url.startswith('https:'):  # the emulator over TLS: its bundle, as the clients'
        from custodian_ext_dev.emulator import tls
        context = tls.client_context(os.environ['AWS_CA_BUNDLE'])
    with urllib.request.urlopen(req, timeout=60, context=context) as resp:
        return json.loads(resp.read())


def fetch(url):
    """The calls counted by the emulator at ``url`` since the last reset."""
    return _request(url, 'calls')['calls']


def start(url):
    """Count from zero."""
    _request(url, 'calls/reset', {})


def set_latency(url, on=True, seed=0, scale=1.0, rate_limits=True):
    """Real AWS's latency and rate limits on (or off) in the emulator (``latency.py``)."""
    return _request(url, 'latency', {'on': on, 'seed': seed, 'scale': scale,
                                     'rate_limits': rate_limits})


def requests(url):
    """Every request since the last reset, in arrival order (latency on only)."""
    return _request(url, 'requests')['requests']


def throttle(url, every, times=1):
    """Throttle every ``every``-th request (0: none), and its retries up to ``times`` in all."""
    _request(url, 'throttle', {'every': every, 'times': times})


def inject_faults(url, seed, rate, kinds=None, persistent=0.5, delay=3.0):
    """Fault a share ``rate`` of policies' calls (custodian_ext_dev.emulator.faults); 0 stops."""
    return _request(url, 'faults', {'seed': seed, 'rate': rate, 'kinds': kinds,
                                    'persistent': persistent, 'delay': delay})


def injected_faults(url):
    """The faulted calls since faults were last configured (``faults.report()``)."""
    return _request(url, 'faults')


# -- server side ---------------------------------------------------------------------

def apply():
    global _APPLIED
    if _APPLIED:
        return
    _APPLIED = True
    from moto.iam.models import get_account_id_from
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    dispatch = DomainDispatcherApplication.__call__

    def call(self, environ, start_response):
        started = time.monotonic()  # arrival: before the body is read
        path = environ.get('PATH_INFO', '')
        if path.startswith(PREFIX):
            return _control(environ, start_response)
        match = _CREDENTIAL.search(environ.get('HTTP_AUTHORIZATION') or '')
        if not match:
            return dispatch(self, environ, start_response)
        access_key, region, service = match.groups()
        length = int(environ.get('CONTENT_LENGTH') or 0)
        body = environ['wsgi.input'].read(length) if length else b''
        environ['wsgi.input'] = io.BytesIO(body)
        method = environ.get('REQUEST_METHOD', 'GET')
        query = environ.get('QUERY_STRING') or ''
        query_keys = tuple(sorted({q.split('=')[0] for q in query.split('&') if q}))
        try:
            account = get_account_id_from(access_key)
        except Exception:
            account = '?'
        key = (account, region, service, method, path, query_keys, _hint(environ, body))
        throttle = False
        with _lock:
            every = _throttle['every']
            if every:
                request = (access_key, method, path, query,
                           hashlib.sha256(body).hexdigest())
                refused = _throttle['pending'].pop(request, None)
                if refused is not None:  # the client's retry of a throttled request
                    if refused < _throttle['times']:
                        _throttle['pending'][request] = refused + 1
                        throttle = True
                else:
                    _throttle['seen'] += 1
                    if _throttle['seen'] % every == 0:
                        _throttle['pending'][request] = 1  # refused once so far
                        throttle = True
            if throttle:
                _throttled[key] += 1
        limited = False
        timed = latency.active()
        if timed:
            # the body is read: the connection can serve the client's next request
            environ[KEEP_ALIVE] = True
            _, _, name, op = _resolve(key)
            fresh = latency.new_connection(environ)
            if not throttle and not latency.admit(account, region, name, op, started):
                limited = True
        with _lock:
            if limited:
                _rate_limited[key] += 1
            elif not throttle:
                _counts[key] += 1
        if throttle or limited:
            if timed:
                drawn = latency.latency(region, name, op, fresh, refused=True)
                took = time.monotonic() - started
                latency.record(started, key, drawn, took, fresh, False,
                               'rate-limited' if limited else 'throttled')
                latency.wait(started, drawn[0])
            status, headers, text = throttling_response(service)
            data = text.encode()
            start_response(status, headers + [('Content-Length', str(len(data)))])
            return [data]
        if faults.active():
            fingerprint = (access_key, method, path, query, hashlib.sha256(body).hexdigest())
            op = _resolve(key)[3]
            fault = faults.check(environ, service, region, op, fingerprint)
            if fault is not None:
                with _lock:
                    _faulted[key] += 1
                status, headers, text, delay = faults.response(
                    fault[0], service, _protocol(service), op, fault[1])
                if delay:
                    time.sleep(delay)  # past the client's read timeout: it has given up
                data = text.encode()
                start_response(status, headers + [('Content-Length', str(len(data)))])
                return [data]
            faults.served(environ, fingerprint)
        if not timed:
            return dispatch(self, environ, start_response)
        result = dispatch(self, environ, start_response)
        took = time.monotonic() - started
        drawn = latency.latency(region, name, op, fresh)
        latency.record(started, key, drawn, took, fresh,
                       latency.is_continuation(query, body), 'ok')
        latency.wait(started, drawn[0])
        return result

    DomainDispatcherApplication.__call__ = call
    keep_alive()


KEEP_ALIVE = 'custodian_ext.keep_alive'


def keep_alive():
    """Keep client connections open while latency is on, as AWS's endpoints do.

    werkzeug's server closes every connection after one response, so each request
    would look like a new HTTPS connection; AWS keeps them open and botocore
    reuses them, which is what makes a client's later calls cheaper than its
    first (``latency.py`` charges the handshake to a connection's first request).
    Only requests whose body ``call`` has read in full are kept alive.
    """
    import selectors
    import types
    import werkzeug.serving
    from moto.moto_server.werkzeug_app import MotoRequestHandler
    send_header = MotoRequestHandler.send_header
    kept = threading.local()

    def send_header_ext(self, keyword, value):
        if keyword.lower() == 'connection' and value.lower() == 'close' and \
                getattr(self, 'environ', {}).get(KEEP_ALIVE) and \
                (self.headers.get('Connection') or '').lower() != 'close':
            value = 'keep-alive'
            kept.on = True
        return send_header(self, keyword, value)

    class Selector(selectors.DefaultSelector):
        # After each response werkzeug reads whatever the client sent next and
        # drops it, which is right only when the connection is closed: on a
        # kept-alive connection that is the client's next request.
        def select(self, timeout=None):
            if getattr(kept, 'on', False):
                kept.on = False
                return []
            return super().select(timeout)

    MotoRequestHandler.send_header = send_header_ext
    werkzeug.serving.selectors = types.SimpleNamespace(
        DefaultSelector=Selector, EVENT_READ=selectors.EVENT_READ)
