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

from custodian_ext.emulator import CLEARED_ENV, assert_loopback, client_env, session

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

    reset_sessions()
    load_resources((data['resource'],))
    config = Config.empty(region=region, regions=list(regions), account_id=account.id if account else None,
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


def key_client(account, service, access_key, region='us-east-1', source_ip=None):
    """A client signed with an IAM user's access key, as someone holding a leaked key would be.

    ``source_ip`` is sent as X-Forwarded-For, which the emulator records as the
    CloudTrail event's sourceIPAddress (custodian_ext/emulator/event_history.py).
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


def share_botocore_loader():
    """One botocore data loader for every session in the test process.

    ``reset_sessions`` and the emulator helpers build fresh boto3 sessions all
    the time, and each new session re-reads and re-parses the service-model
    JSON: about 70% of an in-process policy run. The loader only caches that
    static data, so sharing it changes nothing else (DESIGN.md measured the same
    for c7n-org).
    """
    import botocore.loaders
    import botocore.session
    if getattr(botocore.session.Session._register_data_loader, '_shared', False):
        return
    loaders = {}

    def _register_data_loader(self):
        def shared():
            path = self.get_config_variable('data_path')
            if path not in loaders:
                loaders[path] = botocore.loaders.create_loader(path)
            return loaders[path]
        self._components.lazy_register_component('data_loader', shared)

    _register_data_loader._shared = True
    botocore.session.Session._register_data_loader = _register_data_loader


share_botocore_loader()
