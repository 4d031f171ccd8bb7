"""A local AWS emulator (moto) for the demo, the tests and the benchmarks.

Nothing here may ever reach real AWS: every client and every child process is
pointed at the emulator's loopback URL, and ``assert_loopback`` refuses any
other endpoint before a single call is made.

The server runs in its own process (``python -m custodian_ext_dev.emulator``),
with the extensions in ``custodian_ext_dev.emulator.extensions`` applied to moto
for the AWS behaviour moto lacks. The process exits by itself when its parent
dies, so an interrupted demo leaves no server behind.
"""
import ipaddress
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

DEFAULT_ACCOUNT = '123456789012'  # moto's default account

# Two public Amazon Linux images instead of moto's ~1,300 per region: creating
# an EC2 backend (one per account and region) then takes milliseconds, and the
# seeders launch from these ids without a describe_images call.
AMIS_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'amis.json')
AMI_X86 = 'ami-0a1b2c3d4e5f60718'
AMI_ARM = 'ami-0f1e2d3c4b5a69788'

# Environment for any process that talks to the emulator: fake credentials,
# no profile or instance metadata lookups, fail fast on APIs moto lacks.
CLIENT_ENV = {
    'AWS_ACCESS_KEY_ID': 'testing',
    'AWS_SECRET_ACCESS_KEY': 'testing',
    'AWS_SESSION_TOKEN': 'testing',
    'AWS_DEFAULT_REGION': 'us-east-1',
    'AWS_MAX_ATTEMPTS': '1',
    'AWS_RETRY_MODE': 'standard',
    'AWS_EC2_METADATA_DISABLED': 'true',
    'AWS_CONFIG_FILE': os.devnull,
    'AWS_SHARED_CREDENTIALS_FILE': os.devnull,
}
CLEARED_ENV = ('AWS_PROFILE', 'AWS_DEFAULT_PROFILE', 'AWS_ROLE_ARN',
               'AWS_WEB_IDENTITY_TOKEN_FILE', 'AWS_CONTAINER_CREDENTIALS_RELATIVE_URI',
               'AWS_CONTAINER_CREDENTIALS_FULL_URI', 'MOTO_ACCOUNT_ID')


class NotLoopback(RuntimeError):
    pass


def assert_loopback(url):
    """Refuse any endpoint that is not on this machine's loopback interface."""
    parts = urllib.parse.urlsplit(url or '')
    host = parts.hostname or ''
    if parts.scheme not in ('http', 'https') or not host:
        raise NotLoopback(f"emulator endpoint {url!r} is not an http(s) URL")
    if host == 'localhost':
        return url
    try:
        if ipaddress.ip_address(host).is_loopback:
            return url
    except ValueError:
        pass
    raise NotLoopback(
        f"refusing endpoint {url!r}: the emulator must be on a loopback address "
        f"(127.0.0.1 or ::1), never a real AWS endpoint")


def client_env(url, base=None):
    """A copy of ``base`` (default os.environ) that points AWS clients at ``url``."""
    assert_loopback(url)
    env = dict(os.environ if base is None else base)
    for k in CLEARED_ENV:
        env.pop(k, None)
    env.update(CLIENT_ENV)
    env['AWS_ENDPOINT_URL'] = url
    return env


class Emulator:
    """A moto server process on a free loopback port.

    Use as a context manager; ``url`` is the endpoint, ``session()`` gives
    boto3 sessions bound to it, ``reset()`` empties every backend.
    """

    def __init__(self, host='127.0.0.1', log_file=None, iam_auth=None, tls=False):
        self.host = host
        self.log_file = log_file
        # HTTPS, as AWS's endpoints (emulator/tls.py): clients verify the emulator with
        # ``ca_bundle``, botocore's bundle with its certificate added
        self.tls_dir = tempfile.mkdtemp(prefix='emulator-tls-') if tls else None
        self.ca_bundle = None
        # IAM enforcement: the number of requests served before every signed request is
        # checked against its caller's IAM policies (moto's INITIAL_NO_AUTH_ACTION_COUNT;
        # None: never; 'inf': not yet, until enforce_iam()). See emulator/iam_auth.py.
        self.iam_auth = iam_auth
        self.proc = None
        self.url = None

    def start(self, timeout=60):
        env = dict(os.environ)
        env['MOTO_IAM_LOAD_MANAGED_POLICIES'] = 'true'  # AWS's quarantine policies
        env.setdefault('MOTO_AMIS_PATH', AMIS_FILE)
        env.pop('MOTO_ACCOUNT_ID', None)  # would break multi-account (assume_role)
        env.pop('INITIAL_NO_AUTH_ACTION_COUNT', None)
        if self.iam_auth is not None:
            env['INITIAL_NO_AUTH_ACTION_COUNT'] = str(self.iam_auth)
        err = open(self.log_file, 'ab') if self.log_file else subprocess.DEVNULL
        self.proc = subprocess.Popen(
            [sys.executable, '-m', 'custodian_ext_dev.emulator', '--host', self.host,
             '--parent', str(os.getpid())] + (['--tls', self.tls_dir] if self.tls_dir else []),
            stdout=subprocess.PIPE, stderr=err, env=env, text=True)
        deadline = time.time() + timeout
        line = self.proc.stdout.readline()
        if not line.startswith('READY '):
            self.stop()
            raise RuntimeError(f"emulator failed to start: {line.strip() or 'no output'}")
        self.url = assert_loopback(line.split()[1])
        if self.tls_dir:
            from custodian_ext_dev.emulator import tls
            self.ca_bundle = os.path.join(self.tls_dir, tls.BUNDLE)
        while time.time() < deadline:
            try:
                self._open(self.url + '/moto-api/data.json', timeout=5).read()
                return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError('emulator did not answer in time')

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc and self.proc.stdout:
            self.proc.stdout.close()
        self.proc = None
        if self.tls_dir:
            import shutil
            shutil.rmtree(self.tls_dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def reset(self):
        self.post('/moto-api/reset')

    def _open(self, req, timeout):
        if not self.ca_bundle:
            return urllib.request.urlopen(req, timeout=timeout)
        from custodian_ext_dev.emulator import tls
        return urllib.request.urlopen(req, timeout=timeout,
                                      context=tls.client_context(self.ca_bundle))

    def enforce_iam(self, after=0):
        """Check every signed request against its caller's IAM policies once ``after`` more
        requests have been served (0: from now on; float('inf'): stop checking)."""
        return json.loads(self.post_raw('/moto-api/reset-auth', str(after).encode()))

    def post_raw(self, path, data):
        assert_loopback(self.url)
        req = urllib.request.Request(self.url + path, data=data, method='POST',
                                     headers={'Content-Type': 'application/octet-stream'})
        with self._open(req, timeout=30) as resp:
            return resp.read()

    def post(self, path, body=None):
        assert_loopback(self.url)
        data = json.dumps(body).encode() if body is not None else b''
        req = urllib.request.Request(self.url + path, data=data, method='POST')
        with self._open(req, timeout=30) as resp:
            return resp.read()

    def env(self, base=None):
        env = client_env(self.url, base)
        if self.ca_bundle:
            env['AWS_CA_BUNDLE'] = self.ca_bundle
        return env

    def session(self, account_id=None, region='us-east-1'):
        """A boto3 session on the emulator, in ``account_id`` (via sts:AssumeRole)."""
        return session(self.url, account_id=account_id, region=region)


def session(url, account_id=None, region='us-east-1'):
    import boto3
    from botocore.config import Config

    assert_loopback(url)

    class EmulatorSession(boto3.Session):
        # Every client of this session goes to the emulator, whatever the caller passes.
        def client(self, service, *args, **kw):
            kw['endpoint_url'] = url
            kw.setdefault('config', Config(retries={'max_attempts': 1, 'mode': 'standard'}))
            return super().client(service, *args, **kw)

        def resource(self, service, *args, **kw):
            kw['endpoint_url'] = url
            return super().resource(service, *args, **kw)

    base = EmulatorSession(aws_access_key_id='testing', aws_secret_access_key='testing',
                           region_name=region)
    if not account_id or account_id == DEFAULT_ACCOUNT:
        return base
    creds = base.client('sts').assume_role(
        RoleArn=f'arn:aws:iam::{account_id}:role/OrganizationAccountAccessRole',
        RoleSessionName='emulator-seed')['Credentials']
    return EmulatorSession(aws_access_key_id=creds['AccessKeyId'],
                           aws_secret_access_key=creds['SecretAccessKey'],
                           aws_session_token=creds['SessionToken'], region_name=region)
