"""Per-resource claims: two respond runs at once never act twice on one resource.

Two runs of a respond policy (two responders, a retry started while the first
run is still going, c7n-org with overlapping accounts files) list the same
resources and would each act on them: two sets of evidence snapshots, a key
deactivated and recorded twice, a password randomized twice. Before acting
on a resource, a pack action *claims* it; a resource another run holds is
skipped with the reason, and one it could claim is read again
(``PackAction.still_needed``) so that what another run already did is not
done twice.

The claim is a parameter in AWS Systems Manager Parameter Store, in the
account and region the action runs in::

    /custodian-ext/claims/<action>/<resource id>/<generation>

created with ``PutParameter(Overwrite=False)``: Parameter Store creates a
name once and refuses the second ``PutParameter`` with
``ParameterAlreadyExists``, so exactly one run wins, on real AWS as in the
emulator. EC2 and IAM tags have no such conditional write. The value says
which run holds it (host, process, run id) and until when (the lease).

- When the action is done with the resource (done, skipped or failed), the
  claim is deleted. A run that lists the resource later can claim it, and
  then finds nothing left to do when it reads the resource again.
- A run that dies (SIGKILL, power loss) leaves its claims behind. Each has a
  lease (900 seconds, ``CUSTODIAN_EXT_CLAIM_LEASE`` to change it; the wait
  timeout plus 900 for ``snapshot-before-terminate``): a claim past its lease is taken over by
  creating the next generation, again with ``Overwrite=False``, so two runs
  taking over a stale claim still cannot both win. A rerun inside the lease
  skips those resources and says until when.

Limits: claims work within one account and region (resource ids are unique
there); a run without ``ssm:PutParameter``, ``ssm:GetParametersByPath`` and
``ssm:DeleteParameter`` on ``parameter/custodian-ext/claims/*`` fails closed
(the resource is not touched). Parameter Store keeps at most 10,000
standard parameters per account and region and throttles at about 40
requests per second, far above what a respond run makes. A run slower than
its lease on one resource could be overtaken: raise ``CUSTODIAN_EXT_CLAIM_LEASE``.
``export-user`` keeps its claims until their lease ends (Custodian's
``delete`` runs after it and must not race another run); they stay in
Parameter Store as a record, and are replaced when a later run claims the
same name.
"""
import datetime
import hashlib
import json
import os
import re
import socket
import uuid

from botocore.exceptions import ClientError

PREFIX = '/custodian-ext/claims'
PERMISSIONS = ('ssm:PutParameter', 'ssm:GetParametersByPath', 'ssm:DeleteParameter')
DEFAULT_LEASE = 900
RUN_ID = str(uuid.uuid4())  # one per process: every action of a run shares it
_NAME_OK = re.compile(r'[^A-Za-z0-9_.-]')


def safe_name(value, limit=120):
    """A Parameter Store name segment for ``value`` (letters, digits, ``_.-``), unique."""
    text = str(value)
    clean = _NAME_OK.sub('_', text)
    if clean == text and len(text) <= limit:
        return text
    return f"{clean[:limit]}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


def lease_seconds(default=DEFAULT_LEASE):
    """The lease of a claim: ``CUSTODIAN_EXT_CLAIM_LEASE`` seconds if set, else ``default``."""
    try:
        value = int(os.environ.get('CUSTODIAN_EXT_CLAIM_LEASE') or 0)
    except ValueError:
        value = 0
    return value if value > 0 else default


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


def _iso(dt):
    return dt.strftime('%Y-%m-%dT%H:%M:%SZ')


class ClaimError(RuntimeError):
    """A claim could not be made or read: the resource must not be touched."""


class Claims:
    """The claims of one action in one run (see the module docstring)."""

    def __init__(self, action, lease=None):
        self.action = action
        self.lease = lease or lease_seconds()
        self.base = f"{PREFIX}/{safe_name(action.type)}"
        self.held = {}   # resource id -> parameter name
        self._ssm = None

    @property
    def ssm(self):
        if self._ssm is None:
            from c7n.utils import local_session  # (some actions keep a client in .client)
            self._ssm = local_session(self.action.manager.session_factory).client('ssm')
        return self._ssm

    def _path(self, resource_id):
        return f"{self.base}/{safe_name(resource_id)}"

    def _current(self, path):
        """{generation: value} of the claims under ``path``."""
        out = {}
        params = {'Path': path, 'Recursive': False}
        while True:
            page = self.action.call(self.ssm.get_parameters_by_path, **params)
            for p in page.get('Parameters', ()):
                tail = p['Name'].rsplit('/', 1)[-1]
                if tail.isdigit():
                    try:
                        out[int(tail)] = json.loads(p.get('Value') or '{}')
                    except ValueError:
                        out[int(tail)] = {}
            if not page.get('NextToken'):
                return out
            params['NextToken'] = page['NextToken']

    def claim(self, resource_id):
        """Claim ``resource_id``: None if this run now holds it, else why another run does.

        Raises ClaimError when Parameter Store cannot be used (fail closed).
        """
        path = self._path(resource_id)
        now = _now()
        try:
            current = self._current(path)
            generation = max(current) if current else 0
            if current:
                holder = current[generation]
                expires = holder.get('expires') or ''
                if holder.get('run') == RUN_ID:
                    self.held[resource_id] = f'{path}/{generation}'
                    return None
                if expires > _iso(now):
                    return (f"claimed by another run ({holder.get('host', '?')} pid "
                            f"{holder.get('pid', '?')}, since {holder.get('since', '?')}) until "
                            f"{expires}; if that run died, run again after then")
            name = f'{path}/{generation + 1}'
            value = json.dumps({
                'run': RUN_ID, 'host': socket.gethostname(), 'pid': os.getpid(),
                'policy': self.action.manager.data.get('name'), 'resource': str(resource_id),
                'since': _iso(now),
                'expires': _iso(now + datetime.timedelta(seconds=self.lease))})
            try:
                self.action.call(self.ssm.put_parameter, Name=name, Value=value, Type='String',
                                 Overwrite=False,
                                 Description='custodian-ext: a respond run is acting on this')
            except ClientError as e:
                if e.response['Error']['Code'] == 'ParameterAlreadyExists':
                    return 'claimed by another run at the same moment'
                raise
        except ClientError as e:
            raise ClaimError(f'cannot claim it in Parameter Store ({name_of(e)}; the action needs '
                             f'{", ".join(PERMISSIONS)} on parameter{PREFIX}/*): nothing was '
                             f'done to it') from e
        self.held[resource_id] = name
        for old in sorted(current):  # stale generations this run took over
            self._delete(f'{path}/{old}')
        return None

    def release(self, resource_id):
        name = self.held.pop(resource_id, None)
        if name:
            self._delete(name)

    def release_all(self):
        for rid in list(self.held):
            self.release(rid)

    def _delete(self, name):
        try:
            self.action.call(self.ssm.delete_parameter, Name=name)
        except ClientError as e:
            if e.response['Error']['Code'] != 'ParameterNotFound':
                # the claim expires with its lease; nothing was done twice
                self.action.log.warning('could not release claim %s: %s', name, name_of(e))


def name_of(error):
    err = error.response.get('Error', {})
    return f"{err.get('Code')}: {err.get('Message')}"
