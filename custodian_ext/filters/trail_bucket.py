"""A trail's S3 bucket made ready to destroy the logs in it (R2.1).

Stopping a trail is loud; an attacker who wants the record of what they did
gone can instead let S3 delete it. Two preparations leave the trail
"logging" and every other R2.1 check green:

- a lifecycle rule that expires the log files (``expiration``): a rule with
  ``Expiration`` ``Days`` shorter than ``min-days`` or any ``Date``, enabled,
  that applies to the trail's log prefix. What AWS documents for the other
  lifecycle actions (S3 User Guide, "Lifecycle configuration elements") makes
  them harmless to the current log files, so they do not match on their own:
  ``NoncurrentVersionExpiration`` deletes only versions that were already
  overwritten or deleted, ``AbortIncompleteMultipartUpload`` only the parts of
  unfinished multipart uploads (CloudTrail delivers with single PUTs),
  ``Expiration.ExpiredObjectDeleteMarker`` only delete markers with no
  version behind them, and transitions only change the storage class. They
  are reported with a matching rule because they decide whether an expired
  log file can still be recovered (in a versioned bucket ``Expiration`` only
  places a delete marker; with ``NoncurrentVersionExpiration`` too the file
  is gone for good). Rules limited to object tags never apply: CloudTrail
  does not tag its log files.
- a bucket policy that lets a principal outside ``trusted`` (and the
  account itself), or everyone, delete log files or versions, change the
  lifecycle, the policy, or delete the bucket (``untrusted-deletes``). The
  principal and condition reading is c7n's ``cross-account`` checker, so
  ``aws:PrincipalOrgID`` / ``aws:SourceAccount`` conditions limited to trusted
  accounts are understood as such; service principals are not counted.

Each trail is checked once, in its home region (put ``is-shadow: false``
first). A bucket that no longer exists, or whose configuration cannot be read
(another account's log archive bucket that this principal may not read), is a
finding too, with the reason: an unread bucket is never reported as safe.
"""
import datetime
import json

from botocore.exceptions import ClientError
from c7n.exceptions import PolicyValidationError
from c7n.filters import Filter
from c7n.filters.iamaccess import PolicyChecker
from c7n.utils import local_session, type_schema

from custodian_ext.filters.shares import TRUSTED_SCHEMA, _validate_trusted, trusted_accounts
from custodian_ext.registry import register_filter

#: bucket policy actions that destroy log files or open the way to it
DESTRUCTIVE_ACTIONS = ('s3:DeleteObject', 's3:DeleteObjectVersion', 's3:PutLifecycleConfiguration',
                       's3:DeleteBucket', 's3:PutBucketPolicy')
DEFAULT_MIN_DAYS = 365
MISSING = ('NoSuchBucket',)
NOT_SET = {'lifecycle': ('NoSuchLifecycleConfiguration',), 'policy': ('NoSuchBucketPolicy',)}


def log_prefix(trail):
    """Where the trail writes: ``<S3KeyPrefix>/AWSLogs/`` (organization trails add the org id)."""
    prefix = (trail.get('S3KeyPrefix') or '').strip('/')
    return f"{prefix}/AWSLogs/" if prefix else 'AWSLogs/'


def _rule_filter(rule):
    """(prefix, tags?, size filter?) of a lifecycle rule, old top-level ``Prefix`` included."""
    if 'Filter' not in rule:
        return rule.get('Prefix') or '', False, False
    f = rule.get('Filter') or {}
    if 'And' in f:
        f = f['And'] or {}
        tags = bool(f.get('Tags'))
    else:
        tags = 'Tag' in f
    sized = 'ObjectSizeGreaterThan' in f or 'ObjectSizeLessThan' in f
    return f.get('Prefix') or '', tags, sized


def applies_to(rule, prefix):
    """Does ``rule`` reach objects under ``prefix``: prefixes overlap and no tag condition."""
    rule_prefix, tags, _ = _rule_filter(rule)
    if tags:
        return False
    return prefix.startswith(rule_prefix) or rule_prefix.startswith(prefix)


def expiring_rules(rules, prefix, min_days, now=None):
    """The enabled rules that expire current log files under ``prefix`` sooner than ``min_days``."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    out = []
    for rule in rules or ():
        if rule.get('Status') != 'Enabled' or not applies_to(rule, prefix):
            continue
        exp = rule.get('Expiration') or {}
        if 'Days' in exp and exp['Days'] is not None and exp['Days'] < min_days:
            what = f"expires log files after {exp['Days']} day(s)"
        elif exp.get('Date'):
            date = exp['Date']
            if isinstance(date, datetime.datetime):
                date = date.astimezone(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')
            what = f"expires every log file on {date}"
        else:
            continue
        rule_prefix, _, sized = _rule_filter(rule)
        item = {'Rule': rule.get('ID') or '(no id)', 'Prefix': rule_prefix, 'Expiration': what}
        if sized:
            item['Note'] = 'limited by object size'
        out.append(item)
    return out


def noncurrent_expiry(rules, prefix):
    """Days after which noncurrent log file versions are deleted for good, or None."""
    days = [r['NoncurrentVersionExpiration'].get('NoncurrentDays')
            for r in rules or () if r.get('Status') == 'Enabled' and applies_to(r, prefix)
            and r.get('NoncurrentVersionExpiration')]
    days = [d for d in days if d is not None]
    return min(days) if days else None


def _actions(value):
    return [value] if isinstance(value, str) else list(value or ())


def _grants(statement, wanted):
    """The actions in ``wanted`` a statement allows (Action or NotAction, wildcards, any case)."""
    import fnmatch
    if 'NotAction' in statement:
        excluded = [a.lower() for a in _actions(statement['NotAction'])]
        return [w for w in wanted if not any(fnmatch.fnmatchcase(w.lower(), x) for x in excluded)]
    patterns = [a.lower() for a in _actions(statement.get('Action'))]
    return [w for w in wanted if any(fnmatch.fnmatchcase(w.lower(), p) for p in patterns)]


def _principals(statement):
    if 'NotPrincipal' in statement:
        return ['NotPrincipal (everyone else)']
    p = statement.get('Principal')
    if isinstance(p, str):
        return [p]
    out = []
    for kind, v in (p or {}).items():
        if kind != 'Service':
            out.extend(_actions(v))
    return out


def destructive_grants(policy_text, trusted):
    """Statements of a bucket policy that let outsiders destroy what the bucket holds."""
    if not policy_text:
        return []
    policy = json.loads(policy_text) if isinstance(policy_text, str) else policy_text
    checker = PolicyChecker({'allowed_accounts': sorted(trusted)})
    out = []
    for s in checker.check(policy):
        actions = _grants(s, DESTRUCTIVE_ACTIONS)
        if actions:
            out.append({'Sid': s.get('Sid', ''), 'Principals': sorted(set(_principals(s))),
                        'Actions': actions})
    return out


def _code(error):
    return error.response.get('Error', {}).get('Code', 'Error')


@register_filter('trail-bucket-at-risk', ['cloudtrail'])
class TrailBucketAtRisk(Filter):
    """Trails whose S3 bucket is set up to lose their log files (R2.1).

    ``risk: expiration`` matches a trail whose bucket has an enabled
    lifecycle rule expiring the trail's log files after fewer than
    ``min-days`` days (default 365), or on a date; ``risk: untrusted-deletes``
    a trail whose bucket policy lets a principal outside ``trusted`` (or
    everyone) delete objects or versions, change the lifecycle or the policy,
    or delete the bucket. Either also matches when the bucket is gone or
    cannot be read. ``c7n:trail-bucket-risk`` holds the bucket, the log
    prefix, and the rules or statements found (or why nothing could be read).

    :example:

    .. code-block:: yaml

        policies:
          - name: r2-1-trail-bucket-expires-logs
            resource: aws.cloudtrail
            filters:
              - type: is-shadow
                state: false
              - type: trail-bucket-at-risk
                risk: expiration
                min-days: 365
    """

    schema = type_schema(
        'trail-bucket-at-risk', required=['risk'],
        risk={'enum': ['expiration', 'untrusted-deletes']},
        trusted=TRUSTED_SCHEMA,
        **{'min-days': {'type': 'integer', 'minimum': 1}})
    annotation_key = 'c7n:trail-bucket-risk'

    def get_permissions(self):
        if self.data.get('risk') == 'expiration':
            return ('s3:GetBucketLocation', 's3:GetLifecycleConfiguration',
                    's3:GetBucketVersioning')
        return ('s3:GetBucketLocation', 's3:GetBucketPolicy')

    def validate(self):
        if self.data.get('risk') == 'untrusted-deletes':
            _validate_trusted(self)
        elif 'trusted' in self.data:
            raise PolicyValidationError(
                f"{self.type}: trusted applies to risk: untrusted-deletes only")
        return self

    def process(self, resources, event=None):
        self.session = local_session(self.manager.session_factory)
        self.trusted = trusted_accounts(self) if self.data['risk'] == 'untrusted-deletes' \
            else set()
        seen = {}
        results = []
        for t in resources:
            bucket = t.get('S3BucketName')
            if not bucket:
                continue
            prefix = log_prefix(t)
            key = (bucket, prefix)
            if key not in seen:
                seen[key] = self.check(bucket, prefix)
            found = seen[key]
            if found:
                t[self.annotation_key] = found
                results.append(t)
        return results

    def check(self, bucket, prefix):
        """The annotation for one bucket, or None when it is safe."""
        base = {'Bucket': bucket, 'LogPrefix': prefix}
        try:
            client = self.bucket_client(bucket)
            if self.data['risk'] == 'expiration':
                return self.check_expiration(client, bucket, prefix, base)
            return self.check_policy(client, bucket, base)
        except ClientError as e:
            code = _code(e)
            if code in MISSING:
                return dict(base, Missing=True,
                            Problem='the bucket does not exist: log files are not delivered')
            return dict(base, Unreadable=code, Problem=(
                f"could not read the bucket ({code}: {e.response['Error'].get('Message', '')}); "
                f"check it from the account that owns it"))

    def bucket_client(self, bucket):
        s3 = self.session.client('s3')
        loc = self.manager.retry(s3.get_bucket_location, Bucket=bucket)
        region = loc.get('LocationConstraint') or 'us-east-1'
        region = {'EU': 'eu-west-1'}.get(region, region)
        return self.session.client('s3', region_name=region)

    def _read(self, call, kind, **kw):
        try:
            return self.manager.retry(call, **kw)
        except ClientError as e:
            if _code(e) in NOT_SET[kind]:
                return None
            raise

    def check_expiration(self, client, bucket, prefix, base):
        conf = self._read(client.get_bucket_lifecycle_configuration, 'lifecycle', Bucket=bucket)
        rules = (conf or {}).get('Rules') or []
        found = expiring_rules(rules, prefix, self.data.get('min-days', DEFAULT_MIN_DAYS))
        if not found:
            return None
        status = self.manager.retry(client.get_bucket_versioning, Bucket=bucket).get('Status')
        noncurrent = noncurrent_expiry(rules, prefix)
        if status == 'Enabled':
            recoverable = 'versioned: expired log files get a delete marker and stay recoverable'
            if noncurrent is not None:
                recoverable += f" for {noncurrent} day(s) (NoncurrentVersionExpiration)"
        else:
            recoverable = (f"versioning {'suspended' if status else 'off'}: expired log files "
                           f"are deleted for good")
        return dict(base, Rules=found, Versioning=status or 'Disabled', Recoverable=recoverable)

    def check_policy(self, client, bucket, base):
        resp = self._read(client.get_bucket_policy, 'policy', Bucket=bucket)
        grants = destructive_grants((resp or {}).get('Policy'), self.trusted)
        return dict(base, Grants=grants) if grants else None
