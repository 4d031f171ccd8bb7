"""Real AWS's latency and request-rate limits, in the emulator (wall-time benchmarks).

Off by default: the emulator answers in microseconds and never refuses a request
for its rate. ``POST /moto-api/custodian-ext/latency`` with
``{"on": true, "seed": 1, "scale": 1.0, "rate_limits": true}`` switches both on
(``{"on": false}`` off); ``latency.yml`` (next to this module) holds the figures and
where each comes from.

- Latency: every AWS request is answered no sooner than its drawn latency after it
  arrived: the round trip from the runner's region to the request's region (the
  region the request is signed for), two more round trips on a new HTTPS
  connection (the first request of each client connection), and the service's own
  time drawn from a lognormal distribution per service and operation. The
  emulator's own work counts towards it; a request that took moto longer than its
  drawn latency is answered as soon as moto is done, and counted as an overrun.
- Rate limits: token buckets per account and region (and per API where AWS says
  so), as ``rate_limits`` in ``latency.yml`` lists them (CloudTrail
  ``LookupEvents``: 2 per second per account-region). A request that finds its
  bucket empty is refused with the service's throttling error
  (``ThrottlingException`` for CloudTrail) after one round trip, and counted.
- The request log: ``GET /moto-api/custodian-ext/requests`` answers every request
  since the last ``calls/reset``, in arrival order: ``{"t"`` (seconds since the
  reset), ``"account", "region", "service", "operation", "latency_ms"`` (drawn:
  ``"rtt_ms"`` + ``"handshake_ms"`` + the service's time), ``"took_ms"`` (moto's
  own time), ``"new_connection", "continuation"`` (the
  request carried a pagination token), ``"status"}`` (``ok``, ``rate-limited``,
  ``throttled`` by the injected throttling of ``calls.py``). bench/walltime.py
  computes its floor from it.

Not AWS behaviour by itself: a model of what real AWS costs, for measuring the
pack's wall time against what the APIs allow.
"""
import fnmatch
import math
import os
import random
import re
import threading
import time
import weakref

import yaml

DATA_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'latency.yml')
Z90 = 1.2815515655446004  # the standard normal's 90th percentile

_lock = threading.Lock()
_state = {'model': None, 'buckets': {}, 'rate_limits': False}
_log = []
_connections = weakref.WeakSet()
_clock = {'zero': time.monotonic()}
# A pagination token in the request: this page depends on the one before it.
CONTINUATION = re.compile(
    r'(?:^|[&?"{,\s])(?:NextToken|nextToken|Marker|marker|ContinuationToken|continuation-token|'
    r'PaginationToken|NextMarker|KeyMarker|key-marker|next_token|StartingToken)["=:]')


def load(path=DATA_FILE):
    with open(path) as fh:
        return yaml.safe_load(fh)


class Model:
    """Draws latencies and keeps the token buckets of one configuration."""

    def __init__(self, data, seed=0, scale=1.0):
        self.data = data
        self.scale = float(scale)
        self.random = random.Random(seed)
        net = data.get('network') or {}
        self.rtt_ms = dict(net.get('rtt_ms') or {})
        self.default_rtt_ms = float(net.get('default_rtt_ms', 150))
        self.new_connection_rtts = float(net.get('new_connection_rtts', 2))
        self.times = {}
        for key, spec in (data.get('service_time_ms') or {}).items():
            median, p90 = float(spec['median']), float(spec['p90'])
            sigma = math.log(p90 / median) / Z90 if p90 > median else 0.0
            self.times[key] = (math.log(median), sigma)
        self.rules = []
        for rule in data.get('rate_limits') or ():
            self.rules.append((rule['match'], float(rule['rate']), float(rule['burst'])))

    def rtt(self, region):
        return self.scale * float(self.rtt_ms.get(region, self.default_rtt_ms)) / 1000.0

    def service_time(self, service, operation):
        spec = (self.times.get(f'{service}.{operation}') or self.times.get(service)
                or self.times.get('default'))
        if spec is None:
            return 0.0
        mu, sigma = spec
        with _lock:
            ms = self.random.lognormvariate(mu, sigma) if sigma else math.exp(mu)
        return self.scale * ms / 1000.0

    def rule_for(self, service, operation):
        name = f'{service}.{operation}'
        for i, (pattern, rate, burst) in enumerate(self.rules):
            if fnmatch.fnmatchcase(name, pattern):
                return i, rate, burst
        return None


def configure(options):
    """Apply a control request; returns the configuration now in force."""
    on = bool(options.get('on'))
    with _lock:
        if on:
            data = load(options.get('file') or DATA_FILE)
            _state['model'] = Model(data, seed=options.get('seed', 0),
                                    scale=options.get('scale', 1.0))
            _state['rate_limits'] = bool(options.get('rate_limits', True))
        else:
            _state['model'] = None
            _state['rate_limits'] = False
        _state['buckets'] = {}
    return describe()


def describe():
    model = _state['model']
    if model is None:
        return {'on': False, 'rate_limits': False}
    return {'on': True, 'rate_limits': _state['rate_limits'], 'scale': model.scale,
            'runner_region': model.data.get('runner_region'),
            'rate_limit_rules': [{'match': p, 'rate': r, 'burst': b} for p, r, b in model.rules]}


def active():
    return _state['model'] is not None


def reset_log():
    with _lock:
        del _log[:]
        _clock['zero'] = time.monotonic()


def admit(account, region, service, operation, now=None):
    """False when a rate limit refuses the request now (its token bucket is empty)."""
    model = _state['model']
    if model is None or not _state['rate_limits']:
        return True
    found = model.rule_for(service, operation)
    if found is None:
        return True
    index, rate, burst = found
    now = time.monotonic() if now is None else now
    # Each rule keeps one bucket per account and region; a wildcard rule (ec2.Describe*)
    # one per API, as EC2 does.
    pattern = model.rules[index][0]
    key = (index, account, region, operation if '*' in pattern else '')
    with _lock:
        tokens, last = _state['buckets'].get(key, (burst, now))
        # requests of different threads reach this point out of their arrival order: time
        # never runs backwards for a bucket (that would take tokens away)
        now = max(now, last)
        tokens = min(burst, tokens + (now - last) * rate)
        if tokens < 1.0:
            _state['buckets'][key] = (tokens, now)
            return False
        _state['buckets'][key] = (tokens - 1.0, now)
        return True


def new_connection(environ):
    """True for the first request on a client connection (werkzeug names its socket)."""
    sock = environ.get('werkzeug.socket')
    if sock is None:
        return False
    with _lock:
        try:
            if sock in _connections:
                return False
            _connections.add(sock)
        except TypeError:  # not weak-referenceable
            return False
    return True


def is_continuation(query, body):
    if CONTINUATION.search(query or ''):
        return True
    if body:
        return bool(CONTINUATION.search(body[:4096].decode('utf-8', 'replace')))
    return False


def latency(region, service, operation, fresh, refused=False):
    """(total, round trip, handshake) seconds this request takes on the model's AWS."""
    model = _state['model']
    if model is None:
        return 0.0, 0.0, 0.0
    rtt = model.rtt(region)
    handshake = model.new_connection_rtts * rtt if fresh else 0.0
    total = rtt + handshake
    if not refused:
        total += model.service_time(service, operation)
    return total, rtt, handshake


def record(started, key, drawn, took, fresh, continuation, status):
    """``drawn``: latency()'s answer."""
    with _lock:
        _log.append((started - _clock['zero'], key, drawn, took, fresh, continuation, status))


def wait(started, drawn):
    """Sleep until ``drawn`` seconds after ``started``; True if moto already took longer."""
    remaining = started + drawn - time.monotonic()
    if remaining > 0:
        time.sleep(remaining)
        return False
    return drawn > 0


def entries(resolve):
    """The request log; ``resolve(key) -> (account, region, service, operation)``."""
    with _lock:
        rows = list(_log)
    out = []
    for t, key, (drawn, rtt, handshake), took, fresh, cont, status in rows:
        account, region, service, op = resolve(key)
        out.append({'t': round(t, 4), 'account': account, 'region': region,
                    'service': service, 'operation': op,
                    'latency_ms': round(drawn * 1000, 2), 'rtt_ms': round(rtt * 1000, 2),
                    'handshake_ms': round(handshake * 1000, 2),
                    'took_ms': round(took * 1000, 2),
                    'new_connection': fresh, 'continuation': cont, 'status': status})
    return out
