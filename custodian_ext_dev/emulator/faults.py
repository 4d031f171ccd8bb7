"""Inject faults into the emulator's answers, seeded (tests and benchmarks; not AWS behaviour).

The emulator can answer a share of the AWS requests of Cloud Custodian
policies with the failures a real account produces:

- ``throttle``: the throttling error of the service's protocol (``Throttling``
  for query APIs, ``RequestLimitExceeded`` for EC2, ``ThrottlingException``
  for JSON APIs, ``TooManyRequestsException`` (429) for REST-JSON,
  ``SlowDown`` (503) for S3), as ``custodian_ext_dev.emulator.calls`` sends;
- ``error``: a server error, ``500`` or ``503`` at random: ``InternalError`` /
  ``Unavailable`` (EC2), ``InternalError`` / ``ServiceUnavailable`` (S3 and
  other REST-XML APIs), ``InternalFailure`` / ``ServiceUnavailable`` (query
  APIs), ``InternalFailure`` / ``ServiceUnavailableException`` (JSON and
  REST-JSON APIs);
- ``timeout``: no answer until ``delay`` seconds have passed, longer than the
  client's read timeout (the tests set it short), then an error the client
  has stopped waiting for;
- ``denied``: the access-denied error of the protocol: ``AccessDenied``
  (query, S3), ``UnauthorizedOperation`` (EC2), ``AccessDeniedException``
  (JSON, REST-JSON), with AWS's message naming the action.

Only requests whose User-Agent names a Custodian policy (``c7n/policy#<name>``,
which c7n sets for each policy it runs) are candidates: calls made outside a
policy (the pack's credential check, c7n's account lookup) are never faulted.

Which calls fail is decided per *logical call*: botocore sends the same
``amz-sdk-invocation-id`` with every retry of one call and says which attempt
it is (``amz-sdk-request: attempt=N; max=M``). At the first attempt the
emulator draws, from ``seed`` and the call's region, service, operation and
how many calls of that operation came before it (not from the order in
which different operations arrive, so a run with the same seed faults the
same calls), whether to fault it (probability ``rate``), how (weights
``kinds``) and for how long:

- transient (``throttle`` always; ``error`` and ``timeout`` with probability
  ``1 - persistent``): the first attempt is refused, the retry is served;
- persistent (``denied`` always, which botocore does not retry; ``error`` and
  ``timeout`` with probability ``persistent``): every attempt is refused, so
  the call fails after the client's retries.

Throttling is transient only: c7n retries throttling itself for minutes, on
top of botocore's attempts, so a throttle that never clears cannot be waited
out in a test; once retries are exhausted it fails the same way an error does.

``POST /moto-api/custodian-ext/faults`` with ``{"seed", "rate", "kinds",
"persistent", "delay"}`` starts injecting (and clears the log);
``{"rate": 0}`` stops. ``GET /moto-api/custodian-ext/faults`` answers
``{"config", "faults": [...]}``, one entry per faulted logical call:
``policy``, ``region``, ``service``, ``operation``, ``kind``, ``code``,
``persistent``, ``refused`` (attempts refused), ``max`` (the client's
attempts), ``served`` (a later attempt was answered) and ``recovered`` (a
throttled call the same policy made again, identical, and got answered: c7n
retries throttling itself, as a new call, once botocore gives up). ``failed``
is true for a call the client gave up on: never served and not recovered. A
transient fault whose retry never came (botocore's retry quota ran out) counts
as failed too.
"""
import hashlib
import json
import re
import threading
import time
import uuid

_lock = threading.Lock()
KINDS = ('throttle', 'error', 'timeout', 'denied')
_config = {'rate': 0.0}
_calls = {}       # invocation id -> entry
_order = []       # invocation ids, in the order they were faulted
_seen = {}        # (region, service, operation) -> logical calls seen so far
_refused = {}     # (policy, content fingerprint) -> [invocation ids]
THROTTLING_CODES = {'ec2': 'RequestLimitExceeded', 'json': 'ThrottlingException',
                    'rest-json': 'TooManyRequestsException', 'rest-xml': 'SlowDown',
                    'query': 'Throttling'}  # as calls.throttling_response sends them
POLICY_RE = re.compile(r'c7n/policy#(\S+)')
_SDK_REQUEST = re.compile(r'(\w+)=([^;\s]+)')


def configure(options):
    kinds = options.get('kinds') or {k: 1 for k in KINDS}
    unknown = set(kinds) - set(KINDS)
    if unknown:
        raise ValueError(f"unknown fault kinds {sorted(unknown)}; use {', '.join(KINDS)}")
    config = {'seed': int(options.get('seed') or 0),
              'rate': max(0.0, min(1.0, float(options.get('rate') or 0))),
              'kinds': {k: float(v) for k, v in kinds.items() if float(v) > 0},
              'persistent': max(0.0, min(1.0, float(options.get('persistent', 0.5)))),
              'delay': float(options.get('delay') or 3.0)}
    with _lock:
        _config.clear()
        _config.update(config)
        _calls.clear()
        _order.clear()
        _seen.clear()
        _refused.clear()
    return config


def report():
    with _lock:
        entries = [dict(_calls[i]) for i in _order]
        config = dict(_config)
    for e in entries:
        e['failed'] = not e['served'] and not e['recovered']
    return {'config': config, 'faults': entries}


def _draw(*parts):
    """Three uniform numbers in [0, 1) from a hash of ``parts``."""
    digest = hashlib.sha256('|'.join(str(p) for p in parts).encode()).digest()
    return [int.from_bytes(digest[i:i + 8], 'big') / 2 ** 64 for i in (0, 8, 16)]


def _choose(weights, u):
    total = sum(weights.values())
    acc = 0.0
    for kind in KINDS:
        if kind in weights:
            acc += weights[kind] / total
            if u < acc:
                return kind
    return next(k for k in reversed(KINDS) if k in weights)


def _attempt(environ):
    fields = dict(_SDK_REQUEST.findall(environ.get('HTTP_AMZ_SDK_REQUEST') or ''))
    try:
        attempt = int(fields.get('attempt', 1))
        most = int(fields.get('max', 1))
    except ValueError:
        attempt, most = 1, 1
    return attempt, max(most, attempt)


def check(environ, service, region, operation, fingerprint):
    """The fault to answer this request with, as ``(kind, invocation id)``, or None.

    ``fingerprint`` identifies the request's content (method, URL, body).
    Call ``served(environ, fingerprint)`` when the request was answered instead.
    """
    if not _config.get('rate'):
        return None
    match = POLICY_RE.search(environ.get('HTTP_USER_AGENT') or '')
    invocation = environ.get('HTTP_AMZ_SDK_INVOCATION_ID') or str(uuid.uuid4())
    if not match:
        return None
    policy = match.group(1)
    attempt, most = _attempt(environ)
    with _lock:
        entry = _calls.get(invocation)
        if entry is None:
            if attempt > 1:  # a retry of a call made before faults were switched on
                return None
            key = (region, service, operation)
            n = _seen.get(key, 0)
            _seen[key] = n + 1
            u_fault, u_kind, u_long = _draw(_config['seed'], region, service, operation, n)
            if u_fault >= _config['rate'] or not _config['kinds']:
                return None
            kind = _choose(_config['kinds'], u_kind)
            persistent = kind == 'denied' or (
                kind in ('error', 'timeout') and u_long < _config['persistent'])
            entry = _calls[invocation] = {
                'policy': policy, 'region': region, 'service': service,
                'operation': operation, 'kind': kind, 'persistent': persistent,
                'code': None, 'refused': 0, 'max': most, 'served': False,
                'recovered': False, 'time': time.time(), 'status': None}
            _order.append(invocation)
        elif entry['served']:
            return None
        if not entry['persistent'] and entry['refused'] >= 1:
            return None  # a transient fault: the retry is served
        entry['refused'] += 1
        entry['max'] = max(entry['max'], most)
        _refused.setdefault((policy, fingerprint), []).append(invocation)
        return entry['kind'], invocation


def served(environ, fingerprint):
    """The request was answered: mark its call served, and earlier refused copies recovered."""
    if not _config.get('rate'):
        return
    match = POLICY_RE.search(environ.get('HTTP_USER_AGENT') or '')
    invocation = environ.get('HTTP_AMZ_SDK_INVOCATION_ID')
    with _lock:
        entry = _calls.get(invocation) if invocation else None
        if entry is not None:
            entry['served'] = True
        if match:
            for earlier in _refused.pop((match.group(1), fingerprint), ()):
                if earlier != invocation and _calls[earlier]['kind'] == 'throttle':
                    _calls[earlier]['recovered'] = True


def response(kind, service, protocol, operation, invocation):
    """(status, headers, body, delay) of a fault of ``kind`` for ``protocol``."""
    request_id = str(uuid.uuid4())
    if kind == 'throttle':
        from custodian_ext_dev.emulator.calls import throttling_response
        status, headers, body = throttling_response(service)
        _set_code(invocation, THROTTLING_CODES.get(protocol, 'Throttling'), status)
        return status, headers, body, 0.0
    if kind == 'denied':
        action = f"{service}:{operation}"
        message = (f"User: arn:aws:sts::000000000000:assumed-role/fault/injected is not "
                   f"authorized to perform: {action}")
        code = {'ec2': 'UnauthorizedOperation', 'json': 'AccessDeniedException',
                'rest-json': 'AccessDeniedException'}.get(protocol, 'AccessDenied')
        status = '400 Bad Request' if protocol == 'json' else '403 Forbidden'
        if protocol == 'ec2':
            message = f"You are not authorized to perform this operation. ({action})"
    else:  # error or timeout
        five_hundred = int(hashlib.sha256(invocation.encode()).hexdigest(), 16) % 2 == 0
        status = '500 Internal Server Error' if five_hundred else '503 Service Unavailable'
        codes = {
            'ec2': ('InternalError', 'Unavailable'),
            'rest-xml': ('InternalError', 'ServiceUnavailable'),
            'query': ('InternalFailure', 'ServiceUnavailable'),
        }.get(protocol, ('InternalFailure', 'ServiceUnavailableException'))
        code = codes[0 if five_hundred else 1]
        message = 'We encountered an internal error. Please try again.'
        if kind == 'timeout':
            status, code = '504 Gateway Timeout', 'RequestTimeout'
            message = 'injected timeout: the client stopped waiting before this answer'
    _set_code(invocation, code, status)
    delay = _config.get('delay', 3.0) if kind == 'timeout' else 0.0
    return (status,) + _error_body(protocol, code, message, request_id) + (delay,)


def _set_code(invocation, code, status):
    with _lock:
        entry = _calls.get(invocation)
        if entry is not None:
            entry['code'] = code
            entry['status'] = int(status.split()[0])


def _error_body(protocol, code, message, request_id):
    """(headers, body) of an AWS error response in ``protocol``'s shape."""
    if protocol == 'ec2':
        body = (f'<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error>'
                f'<Code>{code}</Code><Message>{message}</Message></Error></Errors>'
                f'<RequestID>{request_id}</RequestID></Response>')
        return [('Content-Type', 'text/xml')], body
    if protocol == 'json':
        body = json.dumps({'__type': code, 'message': message})
        return [('Content-Type', 'application/x-amz-json-1.1'),
                ('x-amzn-RequestId', request_id)], body
    if protocol == 'rest-json':
        body = json.dumps({'message': message})
        return [('Content-Type', 'application/json'), ('x-amzn-ErrorType', code),
                ('x-amzn-RequestId', request_id)], body
    if protocol == 'rest-xml':
        body = (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
                f'<Message>{message}</Message><RequestId>{request_id}</RequestId></Error>')
        return [('Content-Type', 'application/xml')], body
    body = (f'<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code>'
            f'<Message>{message}</Message></Error><RequestId>{request_id}</RequestId>'
            f'</ErrorResponse>')
    return [('Content-Type', 'text/xml')], body


def active():
    return bool(_config.get('rate'))
