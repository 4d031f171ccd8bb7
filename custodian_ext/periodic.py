"""Periodic mode: the detect policies as scheduled Lambda functions.

``custodian-ext periodic policies/detect --schedule 'rate(1 day)' --role NAME
-o build/periodic.yml`` writes the policies with c7n's ``periodic`` mode, and
the stock ``custodian run -s out --vars-file policies/vars.yml build/periodic.yml``
(or ``c7n-org run -u build/periodic.yml``) deploys one function per policy
and region, each triggered by an EventBridge schedule rule.

A Lambda package holds only ``c7n`` plus what ``mode.packages`` names, and
c7n's generated handler imports nothing but ``c7n.handler``. So each policy
gets:

- ``packages``: the pack and the pure-Python libraries it imports
  (``PACKAGES``; the Lambda runtime provides boto3 and its dependencies);
- ``handler``: ``custodian_ext.handler.run``, which imports the pack (its
  filters register) and then calls ``c7n.handler.dispatch_event``;
- ``tags``: ``policy-pack: custodian-ext`` and the pack's version, so the
  functions can be found and told apart from other Custodian functions.

Settings are substituted when the policy is deployed (``--vars-file``, or the
accounts file's ``vars`` with c7n-org), so each function carries its
account's values in its ``config.json``.

Nothing may half-deploy: a bad schedule or a role that does not exist is
refused before the first function is created (``check_deploy``; AWS, and
the emulator, would only reject the rule after the function exists).
"""
import os
import re

from custodian_ext.errors import PackError

HANDLER = 'custodian_ext.handler.run'
# What `import custodian_ext` needs beyond c7n and the Lambda runtime's own
# boto3 / botocore / dateutil / jmespath / s3transfer / urllib3.
PACKAGES = ['custodian_ext', 'yaml']
PACK_TAG = 'policy-pack'
RUNTIMES = ('python3.10', 'python3.11', 'python3.12', 'python3.13')
DEFAULT_RUNTIME = 'python3.11'
FUNCTION_PREFIX = 'custodian-'
MAX_FUNCTION_NAME = 64
MAX_DESCRIPTION = 256


def version():
    try:
        from importlib.metadata import version as dist_version
        return dist_version('custodian-ext')
    except Exception:
        return 'unknown'


def pack_tags():
    return {PACK_TAG: 'custodian-ext', f'{PACK_TAG}-version': version()}


# -- schedule expressions (EventBridge) ---------------------------------------

RATE_RE = re.compile(r'^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$')
CRON_RE = re.compile(r'^cron\((.*)\)$')
MONTHS = 'JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC'.split()
DAYS = 'SUN MON TUE WED THU FRI SAT'.split()
SCHEDULE_EXAMPLES = "write it like 'rate(1 day)', 'rate(6 hours)' or 'cron(0 6 * * ? *)'"


def _cron_value(token, lo, hi, names):
    if token.isdigit():
        return lo <= int(token) <= hi
    return token.upper() in names


def _cron_field(field, lo, hi, names=(), day_of_month=False, day_of_week=False):
    for item in field.split(','):
        if item == '*':
            continue
        if day_of_month and re.match(r'^(L|LW|\d{1,2}W)$', item):
            if item[0].isdigit() and not 1 <= int(item[:-1]) <= 31:
                return False
            continue
        if day_of_week and re.match(r'^(L|\w{1,3}L|\w{1,3}#[1-5])$', item):
            base = re.split(r'[L#]', item)[0]
            if base and not _cron_value(base, lo, hi, names):
                return False
            continue
        base, _, step = item.partition('/')
        if step and (not step.isdigit() or int(step) < 1):
            return False
        if base == '*':
            continue
        start, _, end = base.partition('-')
        if not _cron_value(start, lo, hi, names) or (end and not _cron_value(end, lo, hi, names)):
            return False
    return True


def check_schedule(expression):
    """Return ``expression`` if EventBridge accepts it; PackError otherwise."""
    expr = (expression or '').strip()
    if expr != expression or not expr:
        raise PackError(f"schedule {expression!r}: {SCHEDULE_EXAMPLES}")
    m = RATE_RE.match(expr)
    if m:
        value, unit = int(m.group(1)), m.group(2)
        if value < 1:
            raise PackError(f"schedule {expr!r}: the rate must be at least 1")
        if (value == 1) != (not unit.endswith('s')):
            fixed = f"rate({value} {unit.rstrip('s') if value == 1 else unit + 's'})"
            raise PackError(f"schedule {expr!r}: EventBridge wants a singular unit for 1 and "
                            f"a plural one otherwise; write {fixed!r}")
        return expr
    if expr.startswith('rate('):
        raise PackError(f"schedule {expr!r}: a rate is a whole number and minute(s), "
                        f"hour(s) or day(s); {SCHEDULE_EXAMPLES}")
    m = CRON_RE.match(expr)
    if not m:
        raise PackError(f"schedule {expr!r} is not a rate() or cron() expression; "
                        f"{SCHEDULE_EXAMPLES}")
    fields = m.group(1).split()
    if len(fields) != 6:
        raise PackError(f"schedule {expr!r}: cron takes 6 fields (minutes hours day-of-month "
                        f"month day-of-week year), not {len(fields)}; {SCHEDULE_EXAMPLES}")
    minute, hour, dom, month, dow, year = fields
    if (dom == '?') == (dow == '?'):
        raise PackError(f"schedule {expr!r}: exactly one of day-of-month and day-of-week "
                        f"must be '?'")
    checks = [('minutes', minute, _cron_field(minute, 0, 59)),
              ('hours', hour, _cron_field(hour, 0, 23)),
              ('day-of-month', dom, dom == '?' or _cron_field(dom, 1, 31, day_of_month=True)),
              ('month', month, _cron_field(month, 1, 12, MONTHS)),
              ('day-of-week', dow, dow == '?' or _cron_field(dow, 1, 7, DAYS, day_of_week=True)),
              ('year', year, _cron_field(year, 1970, 2199))]
    for name, value, ok in checks:
        if not ok:
            raise PackError(f"schedule {expr!r}: {value!r} is not a valid {name} field")
    return expr


# -- roles ---------------------------------------------------------------------

ROLE_NAME_RE = re.compile(r'^[\w+=,.@-]{1,64}$')
ROLE_ARN_RE = re.compile(
    r'^arn:(aws[a-z-]*):iam::(\d{12}|\{account_id\}):role/((?:[\w+=,.@-]+/)*)([\w+=,.@-]{1,64})$')


def check_role(role):
    """A role name, or an ARN in the account it deploys to (``{account_id}`` allowed)."""
    if not role or not (ROLE_NAME_RE.match(role) or ROLE_ARN_RE.match(role)):
        raise PackError(
            f"--role {role!r}: give the execution role's name (CustodianPackLambda) or "
            f"its ARN, arn:aws:iam::{{account_id}}:role/CustodianPackLambda")
    return role


def check_output(output):
    if output and not re.match(r'^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]([/?].*)?$', output):
        raise PackError(f"--output {output!r}: Lambda functions write to S3; give "
                        f"s3://bucket/prefix (a local folder does not exist there)")
    return output


# -- building ------------------------------------------------------------------

def shorten(text, limit=MAX_DESCRIPTION):
    text = ' '.join((text or '').split())
    if len(text) <= limit:
        return text
    cut = text[:limit - 3].rsplit(' ', 1)[0]
    return cut.rstrip(' ,;:.') + '...'


def periodic_policy(policy, schedule, role, output=None, runtime=DEFAULT_RUNTIME,
                    prefix=FUNCTION_PREFIX, source=''):
    """The periodic form of one detect policy; PackError if it cannot be one."""
    name = policy['name']
    where = f"{source}: " if source else ''
    if policy.get('mode'):
        raise PackError(f"{where}policy {name} already has a mode "
                        f"({policy['mode'].get('type')}); periodic takes pull-mode policies")
    if policy.get('actions'):
        raise PackError(f"{where}policy {name} has actions; periodic mode deploys the read-only "
                        f"detect policies only")
    if len(prefix + name) > MAX_FUNCTION_NAME:
        raise PackError(f"{where}policy {name}: the function name {prefix}{name} is longer than "
                        f"Lambda's {MAX_FUNCTION_NAME} characters; shorten the policy name")
    data = dict(policy)
    if data.get('description'):
        # Lambda's Description holds 256 characters, and c7n uses the policy's.
        data['description'] = shorten(data['description'])
    tags = pack_tags()
    step = (policy.get('metadata') or {}).get('runbook')
    if step:
        tags[f'{PACK_TAG}-runbook'] = str(step)
    mode = {'type': 'periodic', 'schedule': schedule, 'role': role, 'runtime': runtime,
            'handler': HANDLER, 'packages': list(PACKAGES), 'tags': tags}
    if prefix != FUNCTION_PREFIX:
        mode['function-prefix'] = prefix
    options = {'output_dir': output} if output else {}
    # substituted at deploy; the handler exports to Security Hub when it is true
    options['securityhub_export'] = '{securityhub_export}'
    mode['execution-options'] = options
    data['mode'] = mode
    return data


def build(paths, schedule, role, output=None, runtime=DEFAULT_RUNTIME, prefix=FUNCTION_PREFIX):
    from custodian_ext.bundle import collect
    check_schedule(schedule)
    check_role(role)
    check_output(output)
    if runtime not in RUNTIMES:
        raise PackError(f"--runtime {runtime}: c7n supports {', '.join(RUNTIMES)}")
    return [(source, periodic_policy(p, schedule, role, output, runtime, prefix, source))
            for source, p in collect(paths)]


def write(paths, out, role_policy=None, **kw):
    import json
    from custodian_ext.bundle import render
    policies = build(paths, **kw)
    if role_policy:
        doc = execution_role_policy([p for _, p in policies])
        os.makedirs(os.path.dirname(os.path.abspath(role_policy)), exist_ok=True)
        with open(role_policy, 'w') as fh:
            json.dump(doc, fh, indent=2)
            fh.write('\n')
    text = render(policies, paths, command='periodic')
    parent = os.path.dirname(os.path.abspath(out))
    os.makedirs(parent, exist_ok=True)
    with open(out, 'w') as fh:
        fh.write(text)
    return len(policies)


# -- permissions ---------------------------------------------------------------

# What the identity that runs `custodian run` / `c7n-org run` on
# build/periodic.yml calls (c7n.mu: LambdaManager.publish, CloudWatchEventSource),
# plus the pack's role check. The test records the calls of a real deploy.
DEPLOY_PERMISSIONS = (
    'iam:GetRole', 'iam:PassRole', 'sts:GetCallerIdentity',
    'lambda:GetFunction', 'lambda:GetFunctionConfiguration', 'lambda:CreateFunction',
    'lambda:UpdateFunctionCode',
    'lambda:UpdateFunctionConfiguration', 'lambda:TagResource', 'lambda:UntagResource',
    'lambda:AddPermission', 'lambda:RemovePermission', 'lambda:GetPolicy',
    'events:DescribeRule', 'events:PutRule', 'events:PutTargets',
    'events:ListTargetsByRule',
)
# What removing them calls (c7n's mugc: LambdaManager.remove).
REMOVE_PERMISSIONS = (
    'lambda:ListFunctions', 'lambda:GetPolicy', 'lambda:DeleteFunction',
    'events:DescribeRule', 'events:ListTargetsByRule', 'events:RemoveTargets',
    'events:DeleteRule',
)
# What every function needs besides its policy's own permissions: its logs,
# and the account id c7n's handler looks up at a cold start.
LAMBDA_RUNTIME_PERMISSIONS = (
    'logs:CreateLogGroup', 'logs:CreateLogStream', 'logs:PutLogEvents',
    'sts:GetCallerIdentity',
)


# What a function calls to keep Security Hub current (securityhub_export).
SECURITYHUB_PERMISSIONS = ('securityhub:BatchImportFindings', 'securityhub:BatchUpdateFindings',
                           'securityhub:GetFindings')


def _exports(data):
    """Whether a function may export to Security Hub: the setting is true, or not yet
    substituted (the role policy is written before the settings are known)."""
    value = ((data.get('mode') or {}).get('execution-options') or {}).get('securityhub_export')
    return value is True or (isinstance(value, str) and 'securityhub_export' in value)


def execution_role_policy(policies):
    """The IAM policy document of the functions' execution role.

    The read permissions are each policy's as ``custodian-ext permissions``
    computes them (``custodian_ext.permissions.policy_permissions``: its
    resource type, filters, actions and mode as c7n declares them, with the
    pack's corrections); writing to an ``s3://`` output adds ``s3:PutObject``
    on that prefix; ``securityhub_export``
    (true, or still a placeholder) adds the Security Hub calls of the export.
    """
    import custodian_ext  # noqa: F401  the pack's filters must be registered
    from c7n.config import Config
    from c7n.policy import Policy
    from c7n.resources import load_resources
    from custodian_ext.permissions import policy_permissions
    load_resources(tuple({p['resource'] for p in policies}))
    actions, resources = set(LAMBDA_RUNTIME_PERMISSIONS), set()
    for data in policies:
        policy = Policy(dict(data), Config.empty(region='us-east-1', account_id='000000000000'))
        actions |= policy_permissions(policy)
        output = ((data.get('mode') or {}).get('execution-options') or {}).get('output_dir')
        if output and output.startswith('s3://'):
            bucket_path = output[5:].split('?', 1)[0].rstrip('/')
            resources.add('arn:aws:s3:::' + re.sub(r'\{[^}]+\}', '*', bucket_path) + '/*')
    statements = [{'Sid': 'PackPolicies', 'Effect': 'Allow', 'Action': sorted(actions),
                   'Resource': '*'}]
    if any(_exports(data) for data in policies):
        statements.append({'Sid': 'SecurityHubExport', 'Effect': 'Allow',
                           'Action': list(SECURITYHUB_PERMISSIONS), 'Resource': '*'})
    if resources:
        statements.append({'Sid': 'PackOutput', 'Effect': 'Allow', 'Action': ['s3:PutObject'],
                           'Resource': sorted(resources)})
    return {'Version': '2012-10-17', 'Statement': statements}


# -- deploying -----------------------------------------------------------------

def is_pack_function(data):
    mode = (data or {}).get('mode') or {}
    return mode.get('handler') == HANDLER or PACK_TAG in (mode.get('tags') or {})


def role_arn(role, account_id, partition='aws'):
    role = role.replace('{account_id}', account_id)
    if role.startswith('arn:'):
        return role
    return f'arn:{partition}:iam::{account_id}:role/{role}'


_checked = set()


def check_deploy(data, session, account_id, partition='aws'):
    """Refuse, before anything is created, a deploy that AWS would reject halfway."""
    mode = data.get('mode') or {}
    name = data.get('name')
    try:
        if mode.get('type') in ('periodic', 'schedule'):
            check_schedule(mode.get('schedule'))
        arn = role_arn(mode.get('role') or '', account_id, partition)
        m = ROLE_ARN_RE.match(arn)
        if not m:
            check_role(mode.get('role'))
    except PackError as e:
        raise PackError(f"policy {name}: {e}") from None
    if m.group(2) != account_id:
        raise PackError(f"policy {name}: the execution role {arn} is in account {m.group(2)}; "
                        f"a Lambda function's role must be in its own account ({account_id})")
    key = (account_id, arn)
    if key in _checked:
        return
    from botocore.exceptions import ClientError
    try:
        session.client('iam').get_role(RoleName=m.group(4))
    except ClientError as e:
        code = e.response.get('Error', {}).get('Code')
        if code == 'NoSuchEntity':
            where = ('Real-time containment' if mode.get('type') == 'exposed-key-notice'
                     else 'Periodic mode')
            raise PackError(
                f"policy {name}: the execution role {arn} does not exist in account "
                f"{account_id}; create it first (README: {where} lists its "
                f"permissions), nothing was deployed") from None
        raise PackError(f"policy {name}: cannot check the execution role {arn} ({code}); "
                        f"the deploying identity needs iam:GetRole") from None
    _checked.add(key)


def pack_functions(configs):
    """The pack's Lambda policies in the policy files of a ``custodian run``."""
    import yaml
    from c7n.utils import yaml_load
    from custodian_ext.policyfiles import policy_files
    out = []
    for path in policy_files(configs):
        try:
            with open(path) as fh:
                data = yaml_load(fh) or {}
        except (OSError, yaml.YAMLError):
            continue  # c7n reports unreadable policy files itself
        if isinstance(data, dict):
            out.extend(p for p in data.get('policies') or ()
                       if isinstance(p, dict) and is_pack_function(p))
    return out
