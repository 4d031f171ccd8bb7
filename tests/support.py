"""Helpers shared by the tests: fresh emulator accounts, the real CLIs, in-process policy runs.

Each test gets its own AWS account on the shared emulator (moto keeps one set
of backends per account), reached with sts:AssumeRole as c7n-org would. That
isolates tests without resetting the emulator between them.
"""
import itertools
import os
import random
import subprocess
import sys
from dataclasses import dataclass, field

import yaml

from custodian_ext_dev.emulator import CLEARED_ENV, assert_loopback, client_env, session

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
POLICIES = os.path.join(REPO, 'policies')
BIN = os.path.dirname(sys.executable)

_ids = itertools.count(1)
_prefix = random.randint(100, 899)


def fresh_account_id():
    return '%03d%09d' % (_prefix, next(_ids))


@dataclass
class Account:
    """One emulated AWS account: boto3 sessions and a subprocess environment for it."""
    id: str
    url: str
    creds: dict = field(repr=False)

    def session(self, region='us-east-1'):
        return session(self.url, account_id=self.id, region=region)

    def client(self, service, region='us-east-1'):
        return self.session(region).client(service)

    @property
    def env(self):
        env = client_env(self.url)
        env.update({
            'AWS_ACCESS_KEY_ID': self.creds['AccessKeyId'],
            'AWS_SECRET_ACCESS_KEY': self.creds['SecretAccessKey'],
            'AWS_SESSION_TOKEN': self.creds['SessionToken'],
            # keep c7n's cache out of the user's home
            'HOME': os.environ.get('CUSTODIAN_TEST_HOME', env.get('HOME', '/tmp')),
        })
        return env

    def apply_env(self, monkeypatch):
        """Point in-process boto3/c7n at this account."""
        for k in CLEARED_ENV:
            monkeypatch.delenv(k, raising=False)
        for k, v in self.env.items():
            if k.startswith('AWS_'):
                monkeypatch.setenv(k, v)


def new_account(url, account_id=None):
    assert_loopback(url)
    account_id = account_id or fresh_account_id()
    base = session(url)
    creds = base.client('sts').assume_role(
        RoleArn=f'arn:aws:iam::{account_id}:role/OrganizationAccountAccessRole',
        RoleSessionName='pack-tests')['Credentials']
    return Account(account_id, url, creds)


def run_cli(args, env, cwd=None, timeout=300, check=None):
    """Run one of the venv's console scripts (custodian, c7n-org, custodian-ext)."""
    exe = os.path.join(BIN, args[0])
    proc = subprocess.run([exe] + list(args[1:]), env=env, cwd=cwd or REPO,
                          capture_output=True, text=True, timeout=timeout)
    if check is not None and proc.returncode != check:
        raise AssertionError(
            f"{' '.join(args)} exited {proc.returncode}, expected {check}\n"
            f"--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-6000:]}")
    return proc


def load_policy(relpath, name):
    """One policy's data from a policy file under policies/."""
    with open(os.path.join(POLICIES, relpath)) as fh:
        for p in yaml.safe_load(fh)['policies']:
            if p['name'] == name:
                return p
    raise KeyError(f"{name} not in {relpath}")


def run_policy(data, variables, region='us-east-1', account=None, output_dir='',
               regions=(), dryrun=False):
    """Run a policy in-process, as `custodian run` would, and return its resources."""
    import custodian_ext  # noqa: F401  registers the pack
    from c7n.config import Config
    from c7n.policy import Policy
    from c7n.resources import load_resources

    from custodian_ext import runcache
    reset_sessions()
    runcache.clear()  # each call is one run, as one `custodian run` process is
    load_resources((data['resource'],))
    config = Config.empty(region=region, regions=list(regions),
                          account_id=account.id if account else None,
                          output_dir=output_dir, cache='', cache_period=0, dryrun=dryrun)
    p = Policy(dict(data), config)
    p.expand_variables(p.get_variables(dict(variables)))
    p.validate()
    return p.run()


def reset_sessions():
    """Drop c7n's cached sessions: they outlive a test, and its account's credentials."""
    import c7n.resources.aws as c7n_aws
    from c7n.utils import reset_session_cache
    reset_session_cache()
    c7n_aws._profile_session = None


def policy_vars(**overrides):
    """The pack's settings for a test: policies/vars.yml with overrides."""
    from custodian_ext import settings
    values = settings.load(os.path.join(POLICIES, 'vars.yml'))
    values.update(overrides)
    return settings.validate(values)


def write_vars(path, values):
    with open(path, 'w') as fh:
        yaml.safe_dump(values, fh, sort_keys=False)
    return str(path)


_BOTOCORE = None


def fast_client(account, service, region='us-east-1'):
    """A boto3 client in ``account`` that reuses one botocore session's parsed models.

    ``Account.client`` builds two new sessions (and an AssumeRole) per call, and
    parsing the service model again costs seconds on a loaded machine.
    """
    global _BOTOCORE
    import boto3
    from botocore.config import Config
    assert_loopback(account.url)
    if _BOTOCORE is None:
        _BOTOCORE = boto3.Session(region_name='us-east-1')
    return _BOTOCORE.client(
        service, region_name=region, endpoint_url=account.url,
        aws_access_key_id=account.creds['AccessKeyId'],
        aws_secret_access_key=account.creds['SecretAccessKey'],
        aws_session_token=account.creds['SessionToken'],
        config=Config(retries={'max_attempts': 1, 'mode': 'standard'}))


def inject_faults(monkeypatch, **handlers):
    """Wrap every botocore client call of this process to inject faults.

    ``handlers`` maps an operation name (``CreateSnapshots``) to
    ``f(params, call)``; ``call()`` makes the real call to the emulator, so a
    handler can fail, rewrite the emulator's answer, or pass it through.
    Returns the list of ``(operation, params)`` calls seen, for assertions.
    """
    import botocore.client
    real = botocore.client.BaseClient._make_api_call
    seen = []

    def make_api_call(self, operation, params):
        seen.append((operation, params))
        handler = handlers.get(operation)
        if handler is None:
            return real(self, operation, params)
        return handler(params, lambda: real(self, operation, params))

    monkeypatch.setattr(botocore.client.BaseClient, '_make_api_call', make_api_call)
    return seen


def client_error(code, operation, message='injected fault'):
    """A ClientError shaped as botocore raises it for an AWS error response."""
    from botocore.exceptions import ClientError
    return ClientError({'Error': {'Code': code, 'Message': message},
                        'ResponseMetadata': {'HTTPStatusCode': 400}}, operation)
def run_policies_in_account(account):
    """``run(data, variables, region=..., output_dir=...)`` for many policies in one account.

    Like ``run_policy``, but c7n's cached session (and the boto3 clients and
    service models it has loaded) is kept between runs: building them is most
    of an in-process policy run's time. The caller must have applied the
    account's environment (``account.apply_env``); sessions are dropped once,
    before the first run, so no other account's session is reused.
    """
    import custodian_ext  # noqa: F401  registers the pack
    from c7n.config import Config
    from c7n.policy import Policy
    from c7n.resources import load_resources

    reset_sessions()

    def run(data, variables, region='us-east-1', output_dir='', dryrun=False):
        load_resources((data['resource'],))
        config = Config.empty(region=region, regions=[], account_id=account.id,
                              output_dir=output_dir, cache='', cache_period=0, dryrun=dryrun)
        p = Policy(dict(data), config)
        p.expand_variables(p.get_variables(dict(variables)))
        p.validate()
        return p.run()
    return run


# The four headline checks: for run-mode tests whose assertions are about the
# mechanics (accounts, regions, deploys), not about the growing detect pack.
HEADLINE = [('x1.yml', 'x1-quarantined-user-active-keys'), ('x2.yml', 'x2-root-access-keys'),
            ('r3-3.yml', 'r3-3-ec2-outside-allowed-regions'), ('x6.yml', 'x6-stopped-instances')]


def headline_folder(tmp):
    """A policy folder holding only the headline checks, one file each, as shipped."""
    folder = os.path.join(str(tmp), 'headline')
    os.makedirs(folder, exist_ok=True)
    for f, name in HEADLINE:
        with open(os.path.join(folder, f), 'w') as fh:
            yaml.safe_dump({'policies': [load_policy(os.path.join('detect', f), name)]}, fh)
    return folder
def key_client(account, service, access_key, region='us-east-1', source_ip=None):
    """A client signed with an IAM user's access key, as someone holding a leaked key would be.

    ``source_ip`` is sent as X-Forwarded-For, which the emulator records as the
    CloudTrail event's sourceIPAddress (custodian_ext_dev/emulator/event_history.py).
    """
    import boto3
    from botocore.config import Config
    assert_loopback(account.url)
    sess = boto3.Session(aws_access_key_id=access_key['AccessKeyId'],
                         aws_secret_access_key=access_key['SecretAccessKey'], region_name=region)
    client = sess.client(service, endpoint_url=account.url,
                         config=Config(retries={'max_attempts': 1, 'mode': 'standard'}))
    if source_ip:
        def forwarded(request, **kw):
            request.headers['X-Forwarded-For'] = source_ip
        client.meta.events.register('before-send', forwarded)
    return client


def detect_sweep(account, tmp_path, variables, regions, paths=None):
    """The real `custodian run` of policies/detect (or ``paths``) in ``account``; its runs.

    Fails the test if any policy run errored: a sweep that errored is not a clean one.
    """
    from custodian_ext.report import load_runs
    vars_file = write_vars(tmp_path / 'vars.yml', variables)
    cmd = ['custodian', 'run', '-s', str(tmp_path / 'out'), '--cache-period', '0',
           '--vars-file', vars_file] + list(paths or [os.path.join(POLICIES, 'detect')])
    for r in regions:
        cmd += ['-r', r]
    proc = run_cli(cmd, account.env, check=0)
    runs = load_runs([str(tmp_path / 'out')])
    errored = [(r.policy, r.region, r.error) for r in runs if r.status == 'errored']
    assert not errored, (errored, proc.stderr[-3000:])
    return runs


def by_policy(runs):
    """{policy name: [findings]} (an empty list for a policy without findings)."""
    from collections import defaultdict
    from custodian_ext.report import findings
    out = defaultdict(list)
    for f in findings(runs):
        out[f.run.policy].append(f)
    return out


# What the Lambda Python runtime provides besides the function's zip.
LAMBDA_RUNTIME_LIBS = ('boto3', 'botocore', 'jmespath', 's3transfer', 'dateutil', 'urllib3',
                       'six')


def run_lambda_handler(archive_bytes, event, env, tmp_path):
    """Run the pack's handler from a deployed zip as Lambda would: a fresh interpreter
    (no site-packages, so not the venv's pack) with only the zip and the runtime's
    libraries on the path. Returns the module file the pack was loaded from."""
    import io
    import json
    import zipfile
    task, runtime = tmp_path / 'task', tmp_path / 'runtime'
    zipfile.ZipFile(io.BytesIO(archive_bytes)).extractall(task)
    runtime.mkdir()
    for lib in LAMBDA_RUNTIME_LIBS:
        src = __import__(lib).__file__
        if src.endswith('__init__.py'):
            src = os.path.dirname(src)
        os.symlink(src, runtime / os.path.basename(src))
    code = ("import json, sys; sys.path[:0] = [sys.argv[1], sys.argv[2]]; "
            "import custodian_ext.handler as h; ok = h.run(json.loads(sys.argv[3]), None); "
            "import custodian_ext; print(json.dumps([ok, custodian_ext.__file__]))")
    env = dict(env, AWS_REGION='us-east-1', AWS_DEFAULT_REGION='us-east-1')
    proc = subprocess.run([sys.executable, '-S', '-E', '-c', code, str(task), str(runtime),
                           json.dumps(event)], cwd=task, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-4000:]
    ok, loaded_from = json.loads(proc.stdout.strip().splitlines()[-1])
    assert ok is True and loaded_from.startswith(str(task))  # the zip's pack, not the venv's
    return loaded_from


# The header row of IAM's credential report, as AWS writes it.
CREDENTIAL_REPORT_HEADER = (
    'user,arn,user_creation_time,password_enabled,password_last_used,password_last_changed,'
    'password_next_rotation,mfa_active,access_key_1_active,access_key_1_last_rotated,'
    'access_key_1_last_used_date,access_key_1_last_used_region,access_key_1_last_used_service,'
    'access_key_2_active,access_key_2_last_rotated,access_key_2_last_used_date,'
    'access_key_2_last_used_region,access_key_2_last_used_service,cert_1_active,'
    'cert_1_last_rotated,cert_2_active,cert_2_last_rotated\n')


def quarantine_user(account, user='leaky'):
    """An IAM user with an access key and AWS's quarantine policy attached (what AWS does
    to a user whose key it found exposed)."""
    iam = account.client('iam')
    iam.create_user(UserName=user)
    iam.create_access_key(UserName=user)
    iam.attach_user_policy(UserName=user,
                           PolicyArn='arn:aws:iam::aws:policy/AWSCompromisedKeyQuarantineV3')


def assert_readme_lists_filter_permissions(policy_data):
    """Every permission of the policy's pack filters is named in the README."""
    import custodian_ext  # noqa: F401  registers the pack
    from c7n.config import Config
    from c7n.policy import Policy
    from c7n.resources import load_resources
    with open(os.path.join(REPO, 'README.md')) as fh:
        readme = fh.read()
    load_resources((policy_data['resource'],))
    p = Policy(dict(policy_data), Config.empty(region='us-east-1', account_id='123456789012'))
    p.expand_variables(p.get_variables(dict(policy_vars())))
    missing = [perm for f in p.resource_manager.filters for perm in f.get_permissions()
               if f'`{perm}`' not in readme]
    assert not missing, f"README does not list {missing} ({policy_data['name']})"
