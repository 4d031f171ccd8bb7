"""AWS Security Hub findings as the API reference documents them, for the emulator.

moto 5.2.5 has a ``securityhub`` backend whose finding calls are thin:
``BatchImportFindings`` stores whatever it gets and, for a known Id, merges
the new fields into the old (so a provider can overwrite the customer's
Workflow and Note), with no check of the hub, the account or the batch;
``GetFindings`` ignores ``Filters`` and ``SortCriteria``; and
``BatchUpdateFindings`` does not exist. Here, following the Security Hub API
reference and the ASFF documentation:

- Every finding call needs Security Hub enabled in the account and region
  (``EnableSecurityHub``), else ``InvalidAccessException``.
- ``BatchImportFindings``: 1 to 100 findings (``InvalidInputException``
  otherwise); under the default product only the account a finding names may
  import it (``ProductArn`` ``arn:aws:securityhub:<region>:<account>:product/
  <account>/default`` and ``AwsAccountId`` both the caller's, else the whole
  call fails with ``AccessDeniedException``, as AWS answers); each finding is
  checked for the ASFF required attributes (SchemaVersion, Id, ProductArn,
  GeneratorId, AwsAccountId, Types, CreatedAt, UpdatedAt, Severity, Title,
  Description, Resources), their lengths, timestamp format, ``Types``
  namespaces, ``ProductFields`` limits and the 240 KB size; a bad one is
  listed in ``FailedFindings`` (``InvalidInput``) and the others imported.
  A finding with a known Id (and ProductArn) replaces the provider's fields;
  the customer's (``Note``, ``UserDefinedFields``, ``VerificationState``,
  ``Workflow``, and whatever ``BatchUpdateFindings`` set) are kept. When
  ``RecordState`` goes from ``ARCHIVED`` to ``ACTIVE``, a ``NOTIFIED`` or
  ``RESOLVED`` workflow goes back to ``NEW``. Security Hub's own fields are
  set: ``Region``, ``Workflow`` (``NEW``), ``RecordState`` (``ACTIVE``),
  ``ProcessedAt``, ``FindingProviderFields``.
- ``BatchUpdateFindings`` (``PATCH /findings/batchupdate``): 1 to 100
  identifiers; Note (Text up to 512 characters, UpdatedBy), Workflow status
  (NEW, NOTIFIED, RESOLVED, SUPPRESSED), Severity, VerificationState,
  Confidence, Criticality, Types, UserDefinedFields, RelatedFindings;
  ``UpdatedAt`` is not changed; an unknown finding is listed in
  ``UnprocessedFindings`` (``FindingNotFound``), a repeated identifier as
  ``DuplicatedFindingIdentifier``. The caller's own account only (an
  administrator account's access to members is not emulated).
- ``GetFindings`` honours ``Filters`` (string filters with EQUALS, PREFIX,
  NOT_EQUALS, PREFIX_NOT_EQUALS, CONTAINS, NOT_CONTAINS, CONTAINS_WORD;
  positive ones on a field joined by OR, negative ones by AND; map filters
  on ProductFields, UserDefinedFields and ResourceTags; date filters with
  Start/End or DateRange) on the fields the pack and its tests use (listed in
  ``STRING_FIELDS``, ``MAP_FIELDS``, ``DATE_FIELDS``; any other filter is
  refused with ``InvalidInputException`` rather than ignored), ``MaxResults``
  1 to 100 and ``NextToken``, and ``SortCriteria`` on top-level fields.

Not emulated: cross-Region aggregation, administrator/member access,
automation rules, partner products, finding history.
"""
import base64
import copy
import datetime
import json
import re
import threading

_lock = threading.Lock()

MAX_BATCH = 100
MAX_FINDING_BYTES = 240 * 1024
REQUIRED = ('SchemaVersion', 'Id', 'ProductArn', 'GeneratorId', 'AwsAccountId', 'Types',
            'CreatedAt', 'UpdatedAt', 'Severity', 'Title', 'Description', 'Resources')
CUSTOMER_FIELDS = ('Note', 'UserDefinedFields', 'VerificationState', 'Workflow',
                   'WorkflowState')
UPDATABLE = ('Note', 'Severity', 'VerificationState', 'Confidence', 'Criticality', 'Types',
             'UserDefinedFields', 'Workflow', 'RelatedFindings')
WORKFLOW = ('NEW', 'NOTIFIED', 'RESOLVED', 'SUPPRESSED')
SEVERITY_LABELS = ('INFORMATIONAL', 'LOW', 'MEDIUM', 'HIGH', 'CRITICAL')
TYPE_NAMESPACES = ('Software and Configuration Checks', 'TTPs', 'Effects',
                   'Unusual Behaviors', 'Sensitive Data Identifications')
TIMESTAMP = re.compile(r'^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})$')
DEFAULT_PRODUCT = re.compile(
    r'^arn:aws[a-z-]*:securityhub:([a-z0-9-]+):(\d{12}):product/(\d{12})/default$')

STRING_FIELDS = {
    'ProductArn': ('ProductArn',), 'AwsAccountId': ('AwsAccountId',), 'Id': ('Id',),
    'GeneratorId': ('GeneratorId',), 'Region': ('Region',), 'Title': ('Title',),
    'Description': ('Description',), 'ProductName': ('ProductName',),
    'CompanyName': ('CompanyName',), 'RecordState': ('RecordState',),
    'SourceUrl': ('SourceUrl',), 'VerificationState': ('VerificationState',),
    'WorkflowStatus': ('Workflow', 'Status'), 'WorkflowState': ('WorkflowState',),
    'SeverityLabel': ('Severity', 'Label'), 'ComplianceStatus': ('Compliance', 'Status'),
    'NoteText': ('Note', 'Text'), 'NoteUpdatedBy': ('Note', 'UpdatedBy'),
    'Type': ('Types', '*'), 'ResourceType': ('Resources', '*', 'Type'),
    'ResourceId': ('Resources', '*', 'Id'), 'ResourcePartition': ('Resources', '*', 'Partition'),
    'ResourceRegion': ('Resources', '*', 'Region'),
}
MAP_FIELDS = {'ProductFields': ('ProductFields',), 'UserDefinedFields': ('UserDefinedFields',),
              'ResourceTags': ('Resources', '*', 'Tags')}
DATE_FIELDS = ('CreatedAt', 'UpdatedAt', 'FirstObservedAt', 'LastObservedAt', 'ProcessedAt')


def _now():
    return datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%S.%f')[:-3] + 'Z'


def _error(code, message):
    from custodian_ext_dev.emulator.extensions import _service_error
    return _service_error()(code, message)


def _store(backend):
    """{(ProductArn, Id): finding} of one account and region, in import order."""
    return backend.__dict__.setdefault('_ext_findings', {})


def _require_hub(backend):
    if not backend.enabled:
        raise _error('InvalidAccessException',
                     f'Account {backend.account_id} is not subscribed to AWS Security Hub')


def _values(finding, path):
    """Every value at ``path`` ('*' walks a list)."""
    items = [finding]
    for part in path:
        nxt = []
        for item in items:
            if part == '*':
                nxt.extend(item if isinstance(item, list) else [])
            elif isinstance(item, dict) and part in item:
                nxt.append(item[part])
        items = nxt
    return items


def _check(finding, caller, region):
    """Why ``finding`` is not valid ASFF, or None."""
    for key in REQUIRED:
        if finding.get(key) in (None, '', []):
            return (f"Finding does not adhere to Amazon Finding Format. data should have "
                    f"required property '{key}'")
    limits = {'Id': 512, 'GeneratorId': 512, 'Title': 256, 'Description': 1024}
    for key, n in limits.items():
        if not isinstance(finding[key], str) or len(finding[key]) > n:
            return f"{key} must be a string of at most {n} characters"
    if not re.match(r'^\d{12}$', str(finding['AwsAccountId'])):
        return 'AwsAccountId must be a 12-digit account id'
    for key in ('CreatedAt', 'UpdatedAt', 'FirstObservedAt', 'LastObservedAt'):
        if key in finding and not TIMESTAMP.match(str(finding[key])):
            return f"{key} is not a valid ISO 8601 timestamp: {finding[key]!r}"
    types = finding['Types']
    if not isinstance(types, list) or len(types) > 50:
        return 'Types must be a list of at most 50 items'
    for t in types:
        if not isinstance(t, str) or t.split('/')[0] not in TYPE_NAMESPACES or t.count('/') < 1:
            return (f"Types: {t!r} is not namespace/category/classifier with a namespace of "
                    f"{', '.join(TYPE_NAMESPACES)}")
    sev = finding['Severity']
    if not isinstance(sev, dict) or not (sev.get('Label') in SEVERITY_LABELS or
                                         isinstance(sev.get('Normalized'), int)):
        return f"Severity needs a Label ({', '.join(SEVERITY_LABELS)}) or Normalized"
    resources = finding['Resources']
    if not isinstance(resources, list) or not 1 <= len(resources) <= 32:
        return 'Finding must contain 1 to 32 resources in the Resources array'
    for r in resources:
        if not isinstance(r, dict) or not r.get('Type') or not r.get('Id'):
            return 'Every resource needs a Type and an Id'
    fields = finding.get('ProductFields') or {}
    if len(fields) > 50 or any(len(k) > 128 or len(str(v)) > 2048 for k, v in fields.items()):
        return ('ProductFields holds at most 50 pairs, keys up to 128 and values up to 2048 '
                'characters')
    if finding.get('RecordState', 'ACTIVE') not in ('ACTIVE', 'ARCHIVED'):
        return 'RecordState must be ACTIVE or ARCHIVED'
    if len(json.dumps(finding).encode()) > MAX_FINDING_BYTES:
        return 'Finding size exceeded: a finding can be at most 240 KB'
    return None


def _import(backend, findings, caller_arn):
    caller, region = backend.account_id, backend.region_name
    if not isinstance(findings, list) or not 1 <= len(findings) <= MAX_BATCH:
        raise _error('InvalidInputException',
                     f'Findings must hold 1 to {MAX_BATCH} findings, got '
                     f'{len(findings) if isinstance(findings, list) else findings!r}')
    for f in findings:
        arn = f.get('ProductArn') or ''
        m = DEFAULT_PRODUCT.match(arn)
        owner_ok = m and m.group(1) == region and m.group(2) == caller and m.group(3) == caller
        if not owner_ok or str(f.get('AwsAccountId')) != caller:
            raise _error('AccessDeniedException',
                         f'User: {caller_arn} is not authorized to perform: '
                         f'securityhub:BatchImportFindings on resource: {arn}')
    store = _store(backend)
    failed, ok = [], 0
    now = _now()
    for f in findings:
        problem = _check(f, caller, region)
        if problem:
            failed.append({'Id': f.get('Id') or '', 'ErrorCode': 'InvalidInput',
                           'ErrorMessage': problem})
            continue
        key = (f['ProductArn'], f['Id'])
        new = copy.deepcopy(f)
        new.setdefault('RecordState', 'ACTIVE')
        new['Region'] = region
        new['ProcessedAt'] = now
        new.setdefault('ProductName', 'Default')
        new.setdefault('CompanyName', 'Personal')
        provider = new.setdefault('FindingProviderFields', {})
        provider.setdefault('Severity', {k: v for k, v in new['Severity'].items()
                                         if k in ('Label', 'Original')})
        provider.setdefault('Types', list(new['Types']))
        old = store.get(key)
        if old is None:
            new.setdefault('Workflow', {'Status': 'NEW'})
            new.setdefault('WorkflowState', 'NEW')
            new['_customer'] = []
        else:
            for field in CUSTOMER_FIELDS + tuple(old.get('_customer') or ()):
                if field in old:
                    new[field] = copy.deepcopy(old[field])
                else:
                    new.pop(field, None)
            new['_customer'] = list(old.get('_customer') or ())
            if old.get('RecordState') == 'ARCHIVED' and new['RecordState'] == 'ACTIVE' and \
                    (new.get('Workflow') or {}).get('Status') in ('NOTIFIED', 'RESOLVED'):
                new['Workflow'] = {'Status': 'NEW'}
                new['WorkflowState'] = 'NEW'
        store[key] = new
        ok += 1
    return {'FailedCount': len(failed), 'SuccessCount': ok, 'FailedFindings': failed}


def _update(backend, params):
    ids = params.get('FindingIdentifiers')
    if not isinstance(ids, list) or not 1 <= len(ids) <= MAX_BATCH:
        raise _error('InvalidInputException',
                     f'FindingIdentifiers must hold 1 to {MAX_BATCH} identifiers')
    workflow = params.get('Workflow')
    if workflow is not None and (workflow or {}).get('Status') not in WORKFLOW:
        raise _error('InvalidInputException',
                     f"Workflow.Status must be one of {', '.join(WORKFLOW)}")
    note = params.get('Note')
    if note is not None and (not note.get('Text') or not note.get('UpdatedBy') or
                             len(note['Text']) > 512):
        raise _error('InvalidInputException',
                     'Note needs Text (at most 512 characters) and UpdatedBy')
    store = _store(backend)
    processed, unprocessed, seen = [], [], set()
    now = _now()
    for ident in ids:
        key = (ident.get('ProductArn'), ident.get('Id'))
        if key in seen:
            unprocessed.append({'FindingIdentifier': ident, 'ErrorCode':
                                'DuplicatedFindingIdentifier',
                                'ErrorMessage': 'Duplicated finding identifier'})
            continue
        seen.add(key)
        finding = store.get(key)
        if finding is None:
            unprocessed.append({'FindingIdentifier': ident, 'ErrorCode': 'FindingNotFound',
                                'ErrorMessage': 'Finding Not Found'})
            continue
        for field in UPDATABLE:
            if field not in params:
                continue
            value = copy.deepcopy(params[field])
            if field == 'Note':
                value = {'Text': value['Text'], 'UpdatedBy': value['UpdatedBy'],
                         'UpdatedAt': now}
            elif field == 'Workflow':
                finding['WorkflowState'] = {'NEW': 'NEW', 'NOTIFIED': 'ASSIGNED',
                                            'RESOLVED': 'RESOLVED',
                                            'SUPPRESSED': 'DEFERRED'}[value['Status']]
            elif field == 'Severity':
                value = dict(finding.get('Severity') or {}, **value)
            finding[field] = value
            if field not in CUSTOMER_FIELDS and field not in finding['_customer']:
                finding['_customer'].append(field)
        processed.append({'Id': key[1], 'ProductArn': key[0]})
    return {'ProcessedFindings': processed, 'UnprocessedFindings': unprocessed}


def _string_match(value, comparison, wanted):
    value = str(value)
    if comparison in ('EQUALS', 'NOT_EQUALS'):
        return value == wanted
    if comparison in ('PREFIX', 'PREFIX_NOT_EQUALS'):
        return value.startswith(wanted)
    if comparison in ('CONTAINS', 'NOT_CONTAINS'):
        return wanted in value
    if comparison == 'CONTAINS_WORD':
        return wanted.lower() in re.findall(r'\w+', value.lower())
    raise _error('InvalidInputException', f'Unknown comparison {comparison!r}')


def _passes(values, filters, match):
    positive = [f for f in filters
                if not f.get('Comparison', '').startswith(('NOT_', 'PREFIX_NOT'))]
    negative = [f for f in filters if f not in positive]
    if positive and not any(match(v, f) for f in positive for v in values):
        return False
    return all(not match(v, f) for f in negative for v in values)


def _date(value):
    return datetime.datetime.fromisoformat(str(value).replace('Z', '+00:00'))


def _matches(finding, filters):
    for name, items in (filters or {}).items():
        if not items:
            continue
        if name in STRING_FIELDS:
            values = _values(finding, STRING_FIELDS[name])
            if not _passes(values, items, lambda v, f: _string_match(v, f['Comparison'],
                                                                      f['Value'])):
                return False
        elif name in MAP_FIELDS:
            maps = [m for m in _values(finding, MAP_FIELDS[name]) if isinstance(m, dict)]
            for f in items:
                hit = any(f['Key'] in m and _string_match(m[f['Key']], f['Comparison'],
                                                          f['Value']) for m in maps)
                if f['Comparison'].startswith('NOT_') == hit:
                    return False
        elif name in DATE_FIELDS:
            if name not in finding:
                return False
            when = _date(finding[name])
            for f in items:
                if 'DateRange' in f:
                    days = f['DateRange']['Value']
                    start = datetime.datetime.now(datetime.timezone.utc) - \
                        datetime.timedelta(days=days)
                    if when < start:
                        return False
                if f.get('Start') and when < _date(f['Start']):
                    return False
                if f.get('End') and when > _date(f['End']):
                    return False
        else:
            raise _error('InvalidInputException',
                         f'The filter {name} is not emulated (custodian_ext_dev.emulator.'
                         f'securityhub)')
    return True


def _public(finding):
    return {k: v for k, v in finding.items() if not k.startswith('_')}


def _get(backend, params):
    max_results = params.get('MaxResults', 100)
    if not isinstance(max_results, int) or not 1 <= max_results <= 100:
        raise _error('InvalidInputException', 'MaxResults must be a number between 1 and 100')
    found = [f for f in _store(backend).values() if _matches(f, params.get('Filters'))]
    for crit in reversed(params.get('SortCriteria') or ()):
        field = crit.get('Field')
        found.sort(key=lambda f: str(f.get(field, '')), reverse=crit.get('SortOrder') == 'desc')
    start = 0
    if params.get('NextToken'):
        try:
            start = int(base64.b64decode(params['NextToken']).decode())
        except ValueError:
            raise _error('InvalidInputException', 'Invalid NextToken') from None
    page = found[start:start + max_results]
    out = {'Findings': [_public(f) for f in page]}
    if start + max_results < len(found):
        out['NextToken'] = base64.b64encode(str(start + max_results).encode()).decode()
    return out


def apply():
    from moto.securityhub import urls
    from moto.securityhub.responses import SecurityHubResponse

    from custodian_ext_dev.emulator.extensions import _caller_arn

    def params(self):
        raw = self.body
        if isinstance(raw, bytes):
            raw = raw.decode('utf-8')
        return json.loads(raw) if raw else {}

    def batch_import_findings(self):
        backend = self.securityhub_backend
        with _lock:
            _require_hub(backend)
            result = _import(backend, params(self).get('Findings'),
                             _caller_arn(self, self.current_account))
        return json.dumps(result)

    def batch_update_findings(self):
        backend = self.securityhub_backend
        with _lock:
            _require_hub(backend)
            result = _update(backend, params(self))
        return json.dumps(result)

    def get_findings(self):
        backend = self.securityhub_backend
        with _lock:
            _require_hub(backend)
            result = _get(backend, params(self))
        return json.dumps(result)

    disable = SecurityHubResponse.disable_security_hub

    def disable_security_hub(self):
        out = disable(self)
        with _lock:
            _store(self.securityhub_backend).clear()
        return out

    SecurityHubResponse.batch_import_findings = batch_import_findings
    SecurityHubResponse.batch_update_findings = batch_update_findings
    SecurityHubResponse.get_findings = get_findings
    SecurityHubResponse.disable_security_hub = disable_security_hub
    urls.url_paths['{0}/findings/batchupdate$'] = SecurityHubResponse.dispatch
