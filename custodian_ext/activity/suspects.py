"""Suspect credentials of one account, and the chain of credentials they lead to.

Where suspicion starts (``seeds``), each kind selectable by the filter's
``suspects`` option:

- ``quarantine``: every access key of a user that carries AWS's quarantine
  marker (``filters.quarantine``: the ``AWSCompromisedKeyQuarantine*``
  managed policies or the older inline policy);
- ``notices``: the keys AWS names in its exposed-key notices, read from the
  AWS Health API (``AWS_RISK_CREDENTIALS_EXPOSED``) and Trusted Advisor's
  "Exposed Access Keys" check (``filters.advisor``). Both APIs need a
  Business or Enterprise support plan; without one the review notes it and
  goes on (AWS's quarantine marker comes from the same notices);
- ``setting``: the keys listed in the ``suspect_access_keys`` setting;
- ``unknown-principals``: principals that are not known (``activity.known``,
  the rule R2.2 uses) and hand out credentials: callers of ``AssumeRole``,
  ``GetFederationToken`` or ``GetSessionToken``. Their own key and the
  credentials they obtained are suspect.

``Chain`` then follows what a suspect credential leads to, from the records
it is shown (``observe``), to a bounded depth:

- temporary credentials (``ASIA...``) issued to a suspect by ``AssumeRole``,
  ``GetSessionToken`` or ``GetFederationToken`` (the issuing event's
  ``responseElements.credentials.accessKeyId``);
- access keys a suspect created (``CreateAccessKey``);
- sessions of roles a suspect created or backdoored (``CreateRole``,
  ``UpdateAssumeRolePolicy``, ``AttachRolePolicy``, ``PutRolePolicy``):
  every credential issued for that role afterwards, by ``AssumeRole*``,
  whoever asked for it.

Each suspect carries why (``reason``) and the chain that led to it (``via``:
the credentials, and ``role/<name>`` for a backdoored role, from the first
suspect to this one).
"""
import logging
from dataclasses import dataclass

from botocore.exceptions import ClientError
from c7n.utils import get_support_region, local_session

import custodian_ext.notices as notices
from custodian_ext.activity import records
from custodian_ext.filters import advisor, quarantine

log = logging.getLogger('custodian.ext.activity')

QUARANTINE, NOTICES, SETTING, UNKNOWN = 'quarantine', 'notices', 'setting', 'unknown-principals'
KINDS = (QUARANTINE, NOTICES, SETTING, UNKNOWN)
# Calls by which an unknown principal obtains credentials (R2.2 flags their callers).
DISCOVERY_CALLS = frozenset({'AssumeRole', 'GetFederationToken', 'GetSessionToken'})
# Calls that issue a role's credentials.
ROLE_ASSUMPTIONS = frozenset({'AssumeRole', 'AssumeRoleWithSAML', 'AssumeRoleWithWebIdentity'})
# Role changes that make every later session of the role the changer's.
ROLE_CHANGES = {'CreateRole': 'created it',
                'UpdateAssumeRolePolicy': 'changed its trust policy',
                'AttachRolePolicy': 'attached a policy to it',
                'PutRolePolicy': 'put a policy on it'}
MAX_DEPTH = 4   # credentials after the first: AKIA -> ASIA -> role -> ASIA -> ...


@dataclass(frozen=True)
class Suspect:
    credential: str   # an access key id
    reason: str
    via: tuple        # the chain from the first suspect to this one

    def annotation(self):
        return {'Credential': self.credential, 'Reason': self.reason, 'Via': list(self.via)}


# -- where suspicion starts ------------------------------------------------------------------

def quarantined_keys(manager):
    """{key id: Suspect} for every access key of a user with AWS's quarantine marker."""
    markers = quarantine.quarantine_markers(manager)
    client = local_session(manager.session_factory).client('iam')
    out = {}
    for user, found in sorted(markers.items()):
        if not found:
            continue
        names = ', '.join(m['PolicyName'] for m in found)
        try:
            keys = manager.retry(client.list_access_keys, UserName=user)['AccessKeyMetadata']
        except ClientError as e:
            if e.response['Error']['Code'] != 'NoSuchEntity':
                raise
            continue  # deleted since it was listed
        for k in keys:
            kid = k['AccessKeyId']
            out[kid] = Suspect(kid, f"an access key of {user}, which carries AWS's quarantine "
                                    f"marker ({names})", (kid,))
    return out


def health_exposed_keys(session, retry):
    """Key ids named by AWS Health ``AWS_RISK_CREDENTIALS_EXPOSED`` events; None without a plan."""
    client = session.client('health', region_name='us-east-1')
    try:
        arns = []
        params = {'filter': {'eventTypeCodes': [notices.HEALTH_EVENT_TYPE]}}
        while True:
            page = retry(client.describe_events, **params)
            arns += [e['arn'] for e in page.get('events', ())]
            if not page.get('nextToken'):
                break
            params['nextToken'] = page['nextToken']
        keys = []
        for i in range(0, len(arns), 10):  # DescribeAffectedEntities takes 10 event ARNs
            params = {'filter': {'eventArns': arns[i:i + 10]}}
            while True:
                page = retry(client.describe_affected_entities, **params)
                keys += [(e['entityValue'], e.get('eventArn'))
                         for e in page.get('entities', ())
                         if notices.KEY_ID_RE.match(e.get('entityValue') or '')]
                if not page.get('nextToken'):
                    break
                params['nextToken'] = page['nextToken']
        return keys
    except ClientError as e:
        if e.response['Error']['Code'] == 'SubscriptionRequiredException':
            return None
        raise


def notice_keys(manager, notes):
    """{key id: Suspect} for the keys AWS Health and Trusted Advisor name."""
    session = local_session(manager.session_factory)
    out = {}
    found = health_exposed_keys(session, manager.retry)
    if found is None:
        notes.append('AWS Health could not be read (no Business or Enterprise support plan): '
                     'its exposed-key notices were not used; AWS quarantines the users it '
                     'names, and those are followed')
    for kid, arn in found or ():
        out.setdefault(kid, Suspect(kid, f'named in an AWS Health exposed-key notice ({arn})',
                                    (kid,)))
    rows = advisor.flagged_keys(session.client('support',
                                               region_name=get_support_region(manager)),
                                manager.retry)
    if rows is None:
        notes.append('Trusted Advisor could not be read (no Business or Enterprise support '
                     'plan): its Exposed Access Keys check was not used')
    for row in rows or ():
        kid = row.get('AccessKeyId')
        if kid and notices.KEY_ID_RE.match(kid):
            out.setdefault(kid, Suspect(
                kid, f"flagged by Trusted Advisor's Exposed Access Keys check (user "
                     f"{row.get('UserName')}, case {row.get('CaseId')})", (kid,)))
    return out


def setting_keys(keys):
    return {k: Suspect(k, 'listed in the suspect_access_keys setting', (k,)) for k in keys}


def seeds(manager, kinds, listed_keys, notes):
    """{key id: Suspect}: where suspicion starts, per ``kinds``."""
    out = {}
    if SETTING in kinds:
        out.update(setting_keys(listed_keys))
    if QUARANTINE in kinds:
        for k, s in quarantined_keys(manager).items():
            out.setdefault(k, s)
    if NOTICES in kinds:
        for k, s in notice_keys(manager, notes).items():
            out.setdefault(k, s)
    return out


# -- following the chain -----------------------------------------------------------------------

def _role_name(arn):
    parts = (arn or '').split(':', 5)
    if len(parts) < 6 or not parts[5].startswith('role/'):
        return None, None
    return parts[4], parts[5].rsplit('/', 1)[-1]


class Chain:
    """The suspects of one account, grown round by round from the records they are shown.

    A round: ``take()`` the credentials and roles to read, ``observe()`` every
    record the source returns, ``settle()``. What a round finds is settled at
    its end, so the result does not depend on the order records arrive in
    (event history pages newest first, log files oldest first): a credential
    found twice keeps the most specific reason (a session of a backdoored
    role, then credentials a suspect obtained or created, then an unknown
    principal's), then the earliest event; a role changed twice dates from
    its first change.
    """

    def __init__(self, account_id, suspects, known=None, roles=None, max_depth=MAX_DEPTH):
        self.account_id = account_id
        self.suspects = dict(suspects)
        self.known = known            # KnownPrincipals, or None: no unknown-principal discovery
        self.roles = dict(roles or {})  # role name -> (rank, via, changer, verb)
        self.max_depth = max_depth
        self.pending = set(self.suspects)
        self.pending_roles = set(self.roles)
        self.too_deep = set()
        self._found = {}       # key -> (rank, Suspect)
        self._changed = {}     # role -> (rank, via, changer, verb)

    @property
    def discovery(self):
        return self.known is not None

    def take(self):
        """(keys, roles) found since the last call: the next round reads them."""
        keys, roles = frozenset(self.pending), frozenset(self.pending_roles)
        self.pending.clear()
        self.pending_roles.clear()
        return keys, roles

    def _candidate(self, priority, record, key, reason, via):
        if not key or key in self.suspects:
            return
        rank = (priority, record.get('eventTime') or '', record.get('eventID') or '')
        if key not in self._found or rank < self._found[key][0]:
            self._found[key] = (rank, Suspect(key, reason, tuple(via)))

    def settle(self):
        """Add what this round found; the next ``take()`` returns it."""
        for key, (_, suspect) in sorted(self._found.items()):
            if len(suspect.via) - 1 > self.max_depth:
                self.too_deep.add(key)
                continue
            self.suspects[key] = suspect
            self.pending.add(key)
        self._found.clear()
        for role, change in sorted(self._changed.items()):
            known = self.roles.get(role)
            if known is None or change[0] < known[0]:
                self.roles[role] = change
                self.pending_roles.add(role)
        self._changed.clear()

    def observe(self, record):
        """Note what one record leads to (any record: the rules pick what matters)."""
        name = record.get('eventName')
        identity = record.get('userIdentity') or {}
        key = identity.get('accessKeyId')
        ok = not record.get('errorCode')
        minted = records.minted_key(record)
        if name in ROLE_ASSUMPTIONS and minted:
            account, role = _role_name((record.get('requestParameters') or {}).get('roleArn'))
            if role in self.roles and account in (None, self.account_id):
                (since, _, _), via, changer, verb = self.roles[role]
                if (record.get('eventTime') or '') >= since:
                    self._candidate(0, record, minted,
                                    f'a session of role {role}; suspect {changer} {verb}',
                                    via + (minted,))
        suspect = self.suspects.get(key) if key else None
        if suspect is not None and ok:
            if minted:
                self._candidate(1, record, minted, f'issued by {name} to suspect {key}',
                                suspect.via + (minted,))
            if name == 'CreateAccessKey':
                new = (((record.get('responseElements') or {}).get('accessKey') or {})
                       .get('accessKeyId'))
                self._candidate(1, record, new, f'created by suspect {key} (CreateAccessKey)',
                                suspect.via + (new,))
            if name in ROLE_CHANGES:
                role = (record.get('requestParameters') or {}).get('roleName')
                # the first change; in one second, creation before the others
                rank = (record.get('eventTime') or '', list(ROLE_CHANGES).index(name),
                        record.get('eventID') or '')
                if role and (role not in self._changed or rank < self._changed[role][0]):
                    self._changed[role] = (rank, suspect.via + (f'role/{role}',), key,
                                           ROLE_CHANGES[name])
        if self.discovery and suspect is None and name in DISCOVERY_CALLS \
                and not self.known.knows_identity(identity):
            who = records.principal_label(identity)
            if key:
                self._candidate(2, record, key, f'used by {who}, which is not a known principal '
                                                f'and obtained credentials', (key,))
            if minted:
                self._candidate(2, record, minted,
                                f'issued by {name} to {who}, which is not a known principal',
                                ((key or who), minted))

