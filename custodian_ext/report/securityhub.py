"""The report's findings in AWS Security Hub (``custodian-ext report OUT --to securityhub``).

Findings are imported with ``BatchImportFindings`` in the AWS Security
Finding Format (ASFF), in batches of at most 100 (Security Hub's limit),
under the account's default product
(``arn:aws:securityhub:<region>:<account>:product/<account>/default``),
``GeneratorId`` ``custodian-ext/<policy>``.

- Where: each finding goes to the account and region it belongs to
  (``AwsAccountId``), with the caller's credentials. Security Hub takes a
  finding under the default product only from the account it names, so an
  organization sweep is imported either with ``--role NAME`` (a role
  assumed in each account, as c7n-org does), or into one aggregation
  account and region (``--aggregation-account ID --aggregation-region R``,
  the caller's own account), where every finding names the aggregation
  account and keeps its own account in ``ProductFields`` and its resource.
  Anything else is refused before the first call.
- Stable ids: ``Id`` is ``custodian-ext/<policy>/<hash of policy, account id,
  region, resource id>`` (the OCSF ``finding_info.uid``), so a second import
  updates the finding: ``UpdatedAt`` and ``LastObservedAt`` move,
  ``CreatedAt`` and ``FirstObservedAt`` are kept (read back first with
  ``GetFindings``).
- Resolved, never deleted: the pack's findings already in Security Hub
  (``GetFindings`` on the default product, ``GeneratorId`` prefix
  ``custodian-ext/``, the account) that this sweep no longer reports are
  archived (``RecordState`` ``ARCHIVED``, through ``BatchImportFindings``)
  and marked ``RESOLVED`` with a note (``BatchUpdateFindings``) - but only
  where the same policy ran to the end in the same account and region.
  A policy that errored, did not run, was skipped, or is not in this report
  leaves its findings as they are.
- Triage: a finding the triage file accepts is imported too, then marked
  ``SUPPRESSED`` with a note naming the owner, the expiry and the reason; a
  finding the pack suppressed whose entry expired is set back to ``NEW``.
  Security Hub keeps ``Workflow`` and ``Note`` across imports.
- Rate: at most Security Hub's documented rates per account and region
  (BatchImportFindings and BatchUpdateFindings 10 requests/s, burst 30;
  GetFindings 3/s, burst 6), and a throttled call (``LimitExceededException``,
  HTTP 429) is retried with exponential backoff, up to 8 attempts.

Permissions: ``securityhub:BatchImportFindings``, ``securityhub:BatchUpdateFindings``,
``securityhub:GetFindings`` (and ``sts:GetCallerIdentity``; ``sts:AssumeRole``
with ``--role``). Security Hub must be enabled in each target account and region.

The periodic and react Lambda functions call ``export_lambda_runs`` after
each run when their ``securityhub_export`` setting is true (see
``custodian_ext.handler``).
"""
import datetime
import logging
import random
import threading
import time

from custodian_ext.errors import PackError
from custodian_ext.report import arns, attack
from custodian_ext.report.ocsf import finding_uid

log = logging.getLogger('custodian.ext.securityhub')

SCHEMA_VERSION = '2018-10-08'
PACK = 'custodian-ext'
GENERATOR_PREFIX = PACK + '/'
NOTE_BY = PACK
BATCH = 100
# Security Hub's documented throttling limits (API reference, per account and Region):
# (requests per second, burst).
RATES = {'BatchImportFindings': (10, 30), 'BatchUpdateFindings': (10, 30),
         'GetFindings': (3, 6)}
THROTTLED = {'LimitExceededException', 'TooManyRequestsException', 'ThrottlingException',
             'Throttling'}
MAX_ATTEMPTS = 8
LABELS = {'critical': 'CRITICAL', 'high': 'HIGH', 'medium': 'MEDIUM', 'low': 'LOW',
          'info': 'INFORMATIONAL'}
# ASFF TTPs categories by ATT&CK tactic.
TTP = {'TA0001': 'Initial Access', 'TA0002': 'Execution', 'TA0003': 'Persistence',
       'TA0004': 'Privilege Escalation', 'TA0005': 'Defense Evasion',
       'TA0006': 'Credential Access', 'TA0008': 'Lateral Movement',
       'TA0010': 'Data Exfiltration', 'TA0040': 'Impact',
       'TA0042': 'Resource Development'}
# Fields a finding provider owns (BatchImportFindings); the others are the customer's.
PROVIDER_FIELDS = ('SchemaVersion', 'Id', 'ProductArn', 'GeneratorId', 'AwsAccountId', 'Types',
                   'FirstObservedAt', 'LastObservedAt', 'CreatedAt', 'UpdatedAt', 'Severity',
                   'FindingProviderFields', 'Title', 'Description', 'Remediation',
                   'SourceUrl', 'ProductFields', 'ProductName', 'CompanyName', 'Resources',
                   'RecordState')


class ExportError(PackError):
    """The export could not be done. The message is one line."""

    def __init__(self, message, code=None):
        super().__init__(message)
        self.code = code


def iso_ms(dt):
    return dt.astimezone(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%S.%f')[:-3] + 'Z'


def product_arn(account, region, partition='aws'):
    return f"arn:{partition}:securityhub:{region}:{account}:product/{account}/default"


def finding_id(f):
    return f"{GENERATOR_PREFIX}{f['policy']}/{finding_uid(f)}"


def _cut(text, n):
    text = text or ''
    return text if len(text) <= n else text[:n - 1] + '…'


def types(f):
    t = attack.technique(f['attack'])
    if t is not None:
        out = [f"TTPs/{TTP.get(tactic, name)}/{t.id} {t.full_name}"[:128]
               for tactic, name in t.tactics]
        return out[:50]
    return [f"Software and Configuration Checks/AWS Security Best Practices/"
            f"custodian-ext {f['step'] or 'check'}"]


def asff(f, account, region, now, previous=None):
    """The ASFF finding for one finding of the report document, imported into
    ``account``/``region`` (its own, or the aggregation account's)."""
    previous = previous or {}
    label = LABELS.get(f['severity'], 'INFORMATIONAL')
    description = f['description'] or f['policy']
    if f['why']:
        description += '\n' + '\n'.join(f"- {w}" for w in f['why'])
    fields = {
        'custodian-ext/Policy': f['policy'],
        'custodian-ext/RunbookStep': f['step'] or '',
        'custodian-ext/RunbookTitle': f['step_title'] or '',
        'custodian-ext/Account': f['account'],
        'custodian-ext/AccountId': f['account_id'] or '',
        'custodian-ext/Region': f['region'],
        'custodian-ext/ResourceType': f['resource_type'],
        'custodian-ext/ResourceId': f['resource_id'],
        'custodian-ext/Severity': f['severity'],
        'custodian-ext/RespondPolicy': f['respond_policy'] or '',
        'custodian-ext/Attack': f['attack'] or '',
        'custodian-ext/ReportFindingId': f['id'],
    }
    fields = {k: _cut(str(v), 2048) for k, v in fields.items() if v not in (None, '')}
    partition = f['arn'].split(':')[1] if (f['arn'] or '').startswith('arn:') else 'aws'
    resource = {
        'Type': arns.asff_type(f['resource_type']),
        'Id': arns.asff_id(f['resource_type'], f['arn'], f['resource_id'], f['account_id']),
        'Partition': partition,
        'Region': f['region'],
        'Details': {'Other': {k: _cut(str(v), 1024) for k, v in (
            ('c7nResourceType', f['resource_type']), ('resourceId', f['resource_id']),
            ('account', f['account']), ('created', f['created'])) if v}},
    }
    finding_types = types(f)
    out = {
        'SchemaVersion': SCHEMA_VERSION,
        'Id': finding_id(f),
        'ProductArn': product_arn(account, region, partition),
        'GeneratorId': GENERATOR_PREFIX + f['policy'],
        'AwsAccountId': account,
        'Types': finding_types,
        'CreatedAt': previous.get('CreatedAt') or now,
        'UpdatedAt': now,
        'FirstObservedAt': previous.get('FirstObservedAt') or now,
        'LastObservedAt': now,
        'Severity': {'Label': label, 'Original': f['severity']},
        'FindingProviderFields': {'Severity': {'Label': label, 'Original': f['severity']},
                                  'Types': finding_types},
        'Title': _cut(f"{f['step']} {f['policy']}: {f['resource_id']}".strip(), 256),
        'Description': _cut(description, 1024),
        'ProductName': PACK,
        'CompanyName': PACK,
        'ProductFields': fields,
        'Resources': [resource],
        'RecordState': 'ACTIVE',
    }
    remedy = ' '.join(x for x in (f['remediation'], f"Respond policy: {f['respond_policy']}."
                                  if f['respond_policy'] else None) if x)
    if remedy:
        out['Remediation'] = {'Recommendation': {'Text': _cut(remedy, 512)}}
    return out


# -- calls -------------------------------------------------------------------------

class RateLimiter:
    """A token bucket per (account, region, operation) at Security Hub's documented rates."""

    def __init__(self, rates=RATES, clock=time.monotonic, sleep=time.sleep):
        self.rates, self.clock, self.sleep = rates, clock, sleep
        self.buckets = {}
        self.lock = threading.Lock()
        self.waited = 0.0

    def acquire(self, key, operation):
        rate, burst = self.rates.get(operation, (10, 30))
        while True:
            with self.lock:
                now = self.clock()
                tokens, last = self.buckets.get((key, operation), (float(burst), now))
                tokens = min(float(burst), tokens + (now - last) * rate)
                if tokens >= 1 - 1e-9:  # (floating point: 0.1 s x 10/s may be 0.999...)
                    self.buckets[(key, operation)] = (max(tokens - 1, 0.0), now)
                    return
                self.buckets[(key, operation)] = (tokens, now)
                wait = max((1 - tokens) / rate, 0.001)
            self.waited += wait
            self.sleep(wait)


class Hub:
    """One account and region's Security Hub: rate-limited, retried calls, counted."""

    def __init__(self, client, account, region, limiter, sleep=time.sleep):
        self.client, self.account, self.region = client, account, region
        self.limiter, self.sleep = limiter, sleep
        self.calls = {}
        self.retries = 0

    def call(self, operation, **params):
        from botocore.exceptions import ClientError
        method = getattr(self.client, {'BatchImportFindings': 'batch_import_findings',
                                       'BatchUpdateFindings': 'batch_update_findings',
                                       'GetFindings': 'get_findings'}[operation])
        for attempt in range(1, MAX_ATTEMPTS + 1):
            self.limiter.acquire((self.account, self.region), operation)
            self.calls[operation] = self.calls.get(operation, 0) + 1
            try:
                return method(**params)
            except ClientError as e:
                err = e.response.get('Error', {})
                status = e.response.get('ResponseMetadata', {}).get('HTTPStatusCode')
                if (err.get('Code') in THROTTLED or status == 429) and attempt < MAX_ATTEMPTS:
                    self.retries += 1
                    self.sleep(min(20.0, 0.2 * 2 ** (attempt - 1)) * (0.5 + random.random()))
                    continue
                raise ExportError(
                    f"Security Hub in {self.account}/{self.region} refused {operation} "
                    f"({err.get('Code')}: {err.get('Message')})"
                    + (': enable Security Hub there first' if err.get('Code') ==
                       'InvalidAccessException' else ''), code=err.get('Code')) from None
        raise AssertionError('unreachable: the last attempt returns or raises')

    def pack_findings(self, generators=None):
        """The pack's findings already here, by Id (any record state)."""
        filters = {
            'ProductArn': [{'Value': product_arn(self.account, self.region),
                            'Comparison': 'EQUALS'}],
            'AwsAccountId': [{'Value': self.account, 'Comparison': 'EQUALS'}],
        }
        if generators:
            filters['GeneratorId'] = [{'Value': g, 'Comparison': 'EQUALS'}
                                      for g in sorted(generators)]
        else:
            filters['GeneratorId'] = [{'Value': GENERATOR_PREFIX, 'Comparison': 'PREFIX'}]
        out, token = {}, None
        while True:
            params = {'Filters': filters, 'MaxResults': 100}
            if token:
                params['NextToken'] = token
            page = self.call('GetFindings', **params)
            for f in page.get('Findings') or ():
                out[f['Id']] = f
            token = page.get('NextToken')
            if not token:
                return out

    def import_findings(self, findings):
        failed = []
        for i in range(0, len(findings), BATCH):
            batch = findings[i:i + BATCH]
            resp = self.call('BatchImportFindings', Findings=batch)
            failed.extend(resp.get('FailedFindings') or ())
        return failed

    def update(self, ids, workflow, note):
        """BatchUpdateFindings: ``workflow`` and a note on the findings ``ids``."""
        failed = []
        arn = product_arn(self.account, self.region)
        for i in range(0, len(ids), BATCH):
            resp = self.call(
                'BatchUpdateFindings',
                FindingIdentifiers=[{'Id': x, 'ProductArn': arn} for x in ids[i:i + BATCH]],
                Workflow={'Status': workflow},
                Note={'Text': _cut(note, 512), 'UpdatedBy': NOTE_BY})
            failed.extend(resp.get('UnprocessedFindings') or ())
        return failed


# -- the export ------------------------------------------------------------------

def clean_scopes(doc):
    """(policy, account id, region) of the detect runs that ran to the end."""
    return {(r['policy'], r['account_id'] or r['account'], r['region']) for r in doc['runs']
            if r['kind'] == 'detect' and r['status'] in ('findings', 'clean')}


def _source(existing):
    fields = existing.get('ProductFields') or {}
    return (fields.get('custodian-ext/Policy'), fields.get('custodian-ext/AccountId'),
            fields.get('custodian-ext/Region'))


def _triage_note(accepted):
    return (f"custodian-ext triage: accepted by {accepted['owner']} until "
            f"{accepted['expires']} ({accepted['file']} entry {accepted['entry']}): "
            f"{accepted['reason']}")


class Sessions:
    """boto3 sessions per target account: the caller's, or a role assumed in each account."""

    def __init__(self, session=None, role=None):
        import boto3
        self.base = session or boto3.Session()
        self.role = role
        self.cache = {}
        self._caller = None

    def caller(self):
        if self._caller is None:
            from botocore.exceptions import BotoCoreError, ClientError
            try:
                self._caller = self.base.client('sts').get_caller_identity()['Account']
            except ClientError as e:
                raise ExportError(f"cannot tell which account the credentials are in "
                                  f"({e.response['Error'].get('Code')})") from None
            except BotoCoreError as e:
                raise ExportError(f"no usable AWS credentials for Security Hub ({e})") from None
        return self._caller

    def role_arn(self, account):
        if self.role.startswith('arn:'):
            return self.role.replace('{account_id}', account)
        return f"arn:aws:iam::{account}:role/{self.role}"

    def for_account(self, account):
        if not self.role:
            return self.base
        if account not in self.cache:
            from botocore.exceptions import ClientError
            arn = self.role_arn(account)
            try:
                creds = self.base.client('sts').assume_role(
                    RoleArn=arn, RoleSessionName='custodian-ext-securityhub')['Credentials']
            except ClientError as e:
                raise ExportError(f"cannot assume {arn} to import account {account}'s findings "
                                  f"({e.response['Error'].get('Code')})") from None
            # the base session's class: the same endpoint settings (the tests' emulator)
            self.cache[account] = type(self.base)(
                aws_access_key_id=creds['AccessKeyId'],
                aws_secret_access_key=creds['SecretAccessKey'],
                aws_session_token=creds['SessionToken'])
        return self.cache[account]

    def client(self, account, region):
        return self.for_account(account).client('securityhub', region_name=region)


def plan(doc, aggregation=None):
    """{(account, region): {'findings': [...], 'scopes': set()}} of the import."""
    targets = {}

    def target(account_id, region):
        key = aggregation or (account_id, region)
        return targets.setdefault(key, {'findings': [], 'scopes': set()})

    for f in list(doc['findings']) + list(doc.get('accepted') or ()):
        if not f['account_id']:
            raise ExportError(f"finding {f['id']} has no account id; Security Hub needs one "
                              f"(the run's metadata.json names none)")
        target(f['account_id'], f['region'])['findings'].append(f)
    for scope in clean_scopes(doc):
        target(scope[1], scope[2])['scopes'].add(scope)
    return targets


def export(doc, sessions=None, aggregation=None, now=None, limiter=None, resolve=True,
           generators=None, sleep=time.sleep):
    """Import ``doc``'s findings; archive and resolve those no longer seen. Returns counts.

    ``aggregation``: (account, region) to import everything into.
    """
    sessions = sessions or Sessions()
    limiter = limiter or RateLimiter(sleep=sleep)
    now = iso_ms(now or datetime.datetime.now(datetime.timezone.utc))
    targets = plan(doc, aggregation)
    if not sessions.role:
        caller = sessions.caller()
        others = sorted({a for a, _ in targets if a != caller})
        if others:
            if aggregation:
                raise ExportError(
                    f"--aggregation-account {aggregation[0]}: the credentials are account "
                    f"{caller}'s; Security Hub takes findings under the default product only "
                    f"from the account they name. Run with that account's credentials (or "
                    f"--role to assume one there)")
            raise ExportError(
                f"findings of account(s) {', '.join(others)} cannot be imported with the "
                f"credentials of account {caller}: Security Hub takes them only from the "
                f"account they belong to. Give --role NAME (assumed in each account) or "
                f"--aggregation-account {caller} --aggregation-region REGION")
    totals = {'targets': len(targets), 'imported': 0, 'created': 0, 'updated': 0,
              'resolved': 0, 'suppressed': 0, 'reopened': 0, 'calls': {}, 'retries': 0,
              'not_enabled': []}
    failures = []
    for (account, region), work in sorted(targets.items()):
        hub = Hub(sessions.client(account, region), account, region, limiter, sleep)
        try:
            existing = hub.pack_findings(generators)
        except ExportError as e:
            if e.code != 'InvalidAccessException' or work['findings']:
                raise
            # nothing to import, and nothing to resolve where Security Hub is off
            totals['not_enabled'].append(f"{account}/{region}")
            continue
        current, accepted, reopen = [], [], []
        for f in work['findings']:
            fid = finding_id(f)
            prev = existing.get(fid)
            current.append(asff(f, account, region, now, prev))
            totals['updated' if prev else 'created'] += 1
            wf = ((prev or {}).get('Workflow') or {}).get('Status')
            note = (prev or {}).get('Note') or {}
            if f.get('accepted'):
                text = _triage_note(f['accepted'])
                if wf != 'SUPPRESSED' or note.get('Text') != _cut(text, 512):
                    accepted.append((fid, text))
            elif wf == 'SUPPRESSED' and note.get('UpdatedBy') == NOTE_BY and \
                    str(note.get('Text', '')).startswith('custodian-ext triage:'):
                reopen.append(fid)
        failures += [f"{x.get('Id')}: {x.get('ErrorCode')} {x.get('ErrorMessage')}"
                     for x in hub.import_findings(current)]
        totals['imported'] += len(current)
        seen = {c['Id'] for c in current}
        gone = []
        if resolve:
            for fid, prev in existing.items():
                if fid in seen or prev.get('RecordState') == 'ARCHIVED':
                    continue
                if _source(prev) in work['scopes']:
                    gone.append(prev)
        if gone:
            archived = [dict({k: v for k, v in prev.items() if k in PROVIDER_FIELDS},
                             RecordState='ARCHIVED', UpdatedAt=now) for prev in gone]
            failures += [f"{x.get('Id')}: {x.get('ErrorCode')} {x.get('ErrorMessage')}"
                         for x in hub.import_findings(archived)]
            failures += _unprocessed(hub.update(
                [g['Id'] for g in gone], 'RESOLVED',
                f"custodian-ext: no longer found at {now} by the same policy in the same "
                f"account and region; archived, not deleted"))
            totals['resolved'] += len(gone)
        by_note = {}
        for fid, text in accepted:
            by_note.setdefault(text, []).append(fid)
        for text, ids in by_note.items():
            failures += _unprocessed(hub.update(ids, 'SUPPRESSED', text))
            totals['suppressed'] += len(ids)
        if reopen:
            failures += _unprocessed(hub.update(
                reopen, 'NEW', 'custodian-ext triage: the entry that accepted this finding '
                               'expired or was removed; open again'))
            totals['reopened'] += len(reopen)
        for op, n in hub.calls.items():
            totals['calls'][op] = totals['calls'].get(op, 0) + n
        totals['retries'] += hub.retries
    if failures:
        raise ExportError(f"Security Hub did not take {len(failures)} finding update(s); "
                          f"first: {failures[0]}")
    return totals


def _unprocessed(items):
    return [f"{(x.get('FindingIdentifier') or {}).get('Id')}: {x.get('ErrorCode')} "
            f"{x.get('ErrorMessage')}" for x in items]


def summary_line(totals, aggregation=None):
    where = (f"into {aggregation[0]}/{aggregation[1]}" if aggregation else
             f"into {totals['targets']} account-region(s)")
    calls = ', '.join(f"{n} {op}" for op, n in sorted(totals['calls'].items()))
    return (f"securityhub: imported {totals['imported']} finding(s) {where} "
            f"({totals['created']} new, {totals['updated']} updated), resolved "
            f"{totals['resolved']}, suppressed {totals['suppressed']} (triage), reopened "
            f"{totals['reopened']}; {calls}"
            + (f"; {totals['retries']} throttled call(s) retried" if totals['retries'] else '')
            + (f"; Security Hub is not enabled in {len(totals['not_enabled'])} "
               f"account-region(s) without findings: skipped" if totals.get('not_enabled')
               else ''))


# -- the Lambda functions' output path --------------------------------------------

# what the Lambda handler's run found, recorded by the lambda program's patch of Policy.push
from custodian_ext.lambda_runs import recording  # noqa: E402,F401


def wants_export(policy):
    mode = policy.data.get('mode') or {}
    value = (mode.get('execution-options') or {}).get('securityhub_export')
    if isinstance(value, str) and value.startswith('{'):
        log.warning("policy %s: securityhub_export was not substituted at deploy time; "
                    "deploy with --vars-file", policy.name)
        return False
    return value is True


def lambda_run(policy, resources):
    """The PolicyRun of one Lambda invocation, or None when it did not run to the end."""
    from custodian_ext.report.model import PolicyRun
    if getattr(policy, '_ext_skip_recorded', False) or getattr(policy, '_ext_skipped', None):
        return None
    if resources is None:
        return None
    account = policy.options.account_id
    return PolicyRun(
        policy=policy.name, account=account, account_id=account, region=policy.options.region,
        status='findings' if resources else 'clean', resource_type=policy.resource_type,
        metadata=policy.data.get('metadata') or {}, description=policy.data.get('description')
        or '', resources=list(resources), tags=['detect'], layout='run')


def export_lambda_runs(ran):
    """After a Lambda invocation: export each run whose policy sets securityhub_export.

    Periodic functions also resolve the findings their policy no longer
    reports in their account and region; event-driven ones (react) only
    import. A failed export raises in periodic functions (the invocation
    fails and is retried; the policy only reads) and is logged in react
    functions (a retry would run the containment again).
    """
    from c7n.utils import local_session
    from custodian_ext.report import document
    for policy, resources in ran:
        if not wants_export(policy):
            continue
        run = lambda_run(policy, resources)
        if run is None:
            log.info("policy %s: skipped or incomplete run, nothing exported to Security Hub",
                     policy.name)
            continue
        periodic = (policy.data.get('mode') or {}).get('type') in ('periodic', 'schedule')
        doc = document.build([run], sources=[f"lambda:{policy.name}"])
        session = local_session(policy.session_factory)
        try:
            totals = export(doc, Sessions(session), resolve=periodic,
                            generators=[GENERATOR_PREFIX + policy.name])
        except ExportError as e:
            log.error("policy %s: Security Hub export failed: %s", policy.name, e)
            if periodic:
                raise
            continue
        log.info("policy %s: %s", policy.name, summary_line(totals))
