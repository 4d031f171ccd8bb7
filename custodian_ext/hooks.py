"""Hooks into the stock ``custodian`` and ``c7n-org`` commands.

Cloud Custodian has no extension points for checking variables or for turning
errors into a readable line, so the pack wraps a few c7n functions when it is
imported. Each wrapper calls the original and only adds checks; none changes
what a valid policy does.

- ``Policy.get_variables`` (everywhere, Lambda included): every pack setting a
  policy refers to is checked, and defaulted, before it is substituted.
- ``LambdaMode.provision`` (everywhere): the pack's periodic functions are
  deployed only if their schedule is valid and their execution role exists
  (``custodian_ext.periodic``); ``custodian run`` checks every one of them
  before the first is deployed.
- ``custodian`` (``c7n.cli.main``, ``c7n.commands``): the ``--vars-file`` is
  checked before any API call; ``run`` checks that credentials and the
  endpoint work and that the region list includes ``global_region``; pack
  errors print as one line with exit status 1; ``run`` and ``validate``
  take a folder as the policy files in it.
- ``Policy.validate`` (everywhere): c7n validates each policy when it loads
  the file, before ``{name}`` settings are substituted, and its date filters
  reject a literal ``'{incident_start}'``. While settings are still
  unsubstituted, a copy of the policy with example settings is validated
  instead; c7n validates the policy itself again once the real values are in.
- ``c7n.schema.validate`` (wherever jsonschema is installed; Lambda packages
  lack it): c7n checks the policy file's schema before settings are
  substituted, so a setting that holds a list or a mapping
  (``transport: '{notify_transport}'``) would fail it. While settings are
  unsubstituted, a copy with example settings is checked instead, as for
  ``Policy.validate``.
- ``c7n-org`` (``c7n_org.cli.init``, and ``validate``, which does not call
  init): the accounts file (present, every account with an id, a name and a
  role or profile), the ``-u`` file (present, one file), ``-p`` / ``-l``
  (each selects a policy), every account's ``vars`` and region list, and, for
  ``run``, the caller's credentials are checked before any worker starts.

Global services (IAM, Organizations, Route 53 Domains, the account) are
checked once per account: their policies carry the condition
``region == {global_region}``. ``custodian run`` places such policies in the
first region it is given, so the run hook puts ``global_region`` first.
"""
import copy
import difflib
import functools
import logging
import os
import re
import sys

from c7n.policy import Policy

from custodian_ext import settings

log = logging.getLogger('custodian.ext')

_INSTALLED = False


from custodian_ext.errors import PackError  # noqa: E402,F401  re-exported


def program():
    return os.path.basename(sys.argv[0] if sys.argv else '').split('.')[0]


def _wrap(owner, name, make):
    original = getattr(owner, name)
    if getattr(original, '_custodian_ext', False):
        return
    wrapper = functools.wraps(original)(make(original))
    wrapper._custodian_ext = True
    setattr(owner, name, wrapper)


# -- every runtime -------------------------------------------------------------

def _policy_get_variables(original):
    def get_variables(self, variables=None):
        names = settings.referenced(self.data)
        if names:
            source = getattr(self.options, 'vars_file', None) or 'vars'
            try:
                checked = settings.validate(variables or {}, source=source, names=names,
                                            unknown=False)
            except settings.SettingsError as e:
                raise settings.SettingsError(f"policy {self.name}: {e}") from None
            if variables is None:
                variables = checked
            else:
                variables.update(checked)
        return original(self, variables)
    return get_variables


def _policy_validate(original):
    def validate(self):
        if settings.referenced(self.data):
            # Not substituted yet: `custodian validate`, and c7n's pre-expansion
            # check in `custodian run`. Validate a copy with sample settings so
            # that e.g. `value_type: date` + '{incident_start}' is checked as a date.
            # A deep copy: c7n's get_variables rewrites mode.role in place.
            sample = Policy(copy.deepcopy(self.data), self.options, self.session_factory)
            sample.expand_variables(sample.get_variables(settings.samples()))
            result = original(sample)
            # c7n's deprecation report reads the original's parsed conditions.
            try:
                self.conditions.validate()
            except Exception:
                pass  # the substituted copy above is the one that counts
            return result
        return original(self)
    return validate


def _schema_validate(original):
    def validate(data, schema=None, resource_types=()):
        if settings.referenced(data):
            data = settings.substitute(data, settings.samples())
        return original(data, schema, resource_types)
    return validate


def install_schema():
    """Schema checks see example settings (Lambda packages have no jsonschema: skipped)."""
    try:
        from c7n import schema
    except ImportError:  # pragma: no cover - c7n without jsonschema
        return
    _wrap(schema, 'validate', _schema_validate)


def _is_runnable(original):
    def is_runnable(self, event=None):
        runnable = original(self, event)
        if not runnable and not getattr(self, '_ext_skip_recorded', False):
            self._ext_skip_recorded = True
            record_skip(self)
        return runnable
    return is_runnable


SKIP_FILE = 'skipped.json'


def record_skip(policy, reason='execution conditions'):
    """Leave ``skipped.json`` (and a minimal ``metadata.json``) where the policy would write.

    Without it, "skipped on purpose" (a global policy outside global_region,
    R3.3 in an allowed region) and "never ran" look the same in the output,
    and the report could not tell a missing run from a clean one. Only the
    output is opened: entering the policy's full execution context would
    create (and, in c7n-org, assume) an AWS session for a policy that makes
    no API call.
    """
    import json
    import time
    from c7n.output import blob_outputs
    if not policy.options.output_dir:
        return
    output = blob_outputs.select(policy.options.output_dir, policy.ctx)
    note = {'policy': policy.name, 'region': policy.options.region,
            'account_id': policy.options.account_id, 'reason': reason}
    output.__enter__()
    try:
        output.write_file(SKIP_FILE, json.dumps(note))
        output.write_file('metadata.json', json.dumps({
            'policy': policy.data,
            'config': {'region': policy.options.region,
                       'account_id': policy.options.account_id},
            'execution': {'start': time.time(), 'skipped': True},
            'metrics': []}, indent=2, default=str))
    finally:
        output.__exit__()


def skip_running_policy(manager, reason):
    """Mark the policy ``manager`` runs for as skipped, with the reason, from inside the run.

    For a check that cannot apply to this account (R3.2 without a Business or
    Enterprise support plan): the run ends with no resources, ``skipped.json``
    says why, and the log says so too, so it never reads as "clean".
    """
    import json
    policy = manager.ctx.policy
    policy._ext_skipped = reason  # not a clean run: nothing to export or resolve
    log.warning("policy %s skipped in %s: %s", policy.name, manager.config.region, reason)
    output = getattr(manager.ctx, 'output', None)
    if output is not None and policy.options.output_dir:
        output.write_file(SKIP_FILE, json.dumps({
            'policy': policy.name, 'region': manager.config.region,
            'account_id': manager.config.account_id, 'reason': reason}))


# -- custodian -----------------------------------------------------------------

def _load_vars(original):
    def load_vars(options):
        values = original(options)
        if values is None:
            return values
        # Types and misspelt keys now; required keys once we know which
        # settings the selected policies use.
        present = [k for k in values if k in settings.SETTINGS]
        return settings.validate(values, source=options.vars_file, names=present)
    return load_vars


def policy_files(configs):
    """Policy files named on the command line, with folders expanded."""
    out = []
    for c in configs:
        if os.path.isdir(c):
            found = sorted(
                os.path.join(c, f) for f in os.listdir(c)
                if f.endswith(('.yml', '.yaml')) and f not in ('vars.yml', 'vars.yaml'))
            if not found:
                raise PackError(f"{c}: the folder holds no policy files (*.yml)")
            out.extend(found)
        else:
            out.append(c)
    return out


def settings_in_files(configs):
    """Pack settings that the policy files refer to (read as plain YAML)."""
    import yaml
    names = set()
    for path in policy_files(configs):
        try:
            with open(path) as fh:
                names |= settings.referenced(yaml.safe_load(fh))
        except (OSError, yaml.YAMLError):
            pass  # c7n reports unreadable policy files itself
    return names


NO_CREDENTIALS = ('no AWS credentials found; set AWS_PROFILE, or AWS_ACCESS_KEY_ID and '
                  'AWS_SECRET_ACCESS_KEY, or run with an instance or task role')


def preflight(session, region):
    """Fail fast, in one line, when no API call could succeed; return the caller's identity."""
    import botocore.exceptions as bexc
    try:
        if session.get_credentials() is None:
            raise PackError(NO_CREDENTIALS)
        return session.client('sts', region_name=region).get_caller_identity()
    except bexc.ProfileNotFound as e:
        raise PackError(f"{e}; check --profile or AWS_PROFILE") from None
    except (bexc.EndpointConnectionError, bexc.ConnectTimeoutError) as e:
        raise PackError(
            f"cannot reach AWS ({e}); check the network, or AWS_ENDPOINT_URL if set") from None
    except bexc.NoCredentialsError:
        raise PackError(NO_CREDENTIALS) from None
    except bexc.ClientError as e:
        err = e.response.get('Error', {})
        raise PackError(
            f"AWS rejected the credentials ({err.get('Code')}: {err.get('Message')}); "
            f"refresh them or pick another profile") from None


def place_global_region(regions, global_region, default_region):
    """The run's region list, arranged so global-service policies run once.

    c7n runs a global policy in the first region listed, and the pack's global
    policies run only where ``region == global_region``.
    """
    regions = list(regions or ())
    if not regions:
        # No -r: the session's region, plus the global region for IAM & co.
        return [global_region] + ([default_region] if default_region != global_region else [])
    if global_region in regions:
        return [global_region] + [r for r in regions if r != global_region]
    if regions == ['all']:
        return [global_region, 'all']
    raise PackError(
        f"global services (IAM, Organizations, the account) are checked in global_region "
        f"{global_region}, which this run leaves out; add -r {global_region}, or set "
        f"global_region in the vars file to one of {', '.join(regions)}")


def _vars_source(options):
    return options.vars_file or 'no --vars-file given (pass --vars-file policies/vars.yml)'


def _run_command(original):
    def run(options):
        from c7n import commands as c7n_commands
        from c7n.resources.aws import get_profile_session
        # Settings first: a bad vars file stops the run before any API call.
        values = c7n_commands._load_vars(options) or {}
        names = settings_in_files(options.configs)
        if names:
            values = settings.validate(values, source=_vars_source(options), names=names)
        session = get_profile_session(options)
        default_region = session.region_name or 'us-east-1'
        if 'global_region' in names:
            options.regions = place_global_region(
                options.regions, values['global_region'], default_region)
        region = next((r for r in (options.regions or ()) if r != 'all'), default_region)
        identity = preflight(session, region)
        check_deploys(options, session, identity, region, values)
        # A folder as its files: c7n's folder loader checks types before settings are
        # substituted and rejects a list setting ('{trusted_accounts}') where a list
        # goes; its file loader allows for such placeholders.
        options.configs = policy_files(options.configs)
        return original(options)
    return run


def check_deploys(options, session, identity, region, values=None):
    """Lambda policies of the pack: schedule, role and region checked before anything deploys."""
    from custodian_ext import periodic
    # the role may be a setting ('{react_role}'), substituted only later by c7n
    functions = [settings.substitute(f, values or {})
                 for f in periodic.pack_functions(options.configs)]
    if not functions:
        return
    if options.assume_role:
        from c7n.credentials import SessionFactory
        session = SessionFactory(region, options.profile, options.assume_role,
                                 getattr(options, 'external_id', None))()
        identity = session.client('sts').get_caller_identity()
    partition = (identity.get('Arn') or 'arn:aws:').split(':')[1] or 'aws'
    from custodian_ext import react
    regions = [r for r in options.regions or () if r != 'all']
    for data in functions:
        periodic.check_deploy(data, session, identity['Account'], partition)
        react.check_regions(data, regions, identity['Account'])


def _cli_main(original):
    def main(args=None):
        argv = list(sys.argv[1:] if args is None else args)
        try:
            if argv[:1] == ['validate']:
                # c7n's validate takes files only; accept folders as `run` does.
                args = ['validate'] + _expand_validate_args(argv[1:])
            return original(args)
        except (PackError, settings.SettingsError) as e:
            sys.stderr.write(f"custodian: error: {e}\n")
            sys.exit(1)
    return main


def _expand_validate_args(args):
    out = []
    for a in args:
        out.extend(policy_files([a]) if os.path.isdir(a) else [a])
    return out


def install_cli():
    """Hooks for the ``custodian`` console script."""
    from c7n import cli as c7n_cli
    from c7n import commands as c7n_commands
    _wrap(c7n_commands, '_load_vars', _load_vars)
    _wrap(c7n_commands, 'run', _run_command)
    _wrap(c7n_cli, 'main', _cli_main)


# -- c7n-org -------------------------------------------------------------------

def _cli_regions():
    try:
        import click
        ctx = click.get_current_context(silent=True)
    except ImportError:
        return ()
    return tuple((ctx.params.get('region') if ctx else None) or ())


def check_accounts(accounts_config, custodian_config, source, cli_regions=()):
    """Check every account's vars and region list; raise SettingsError or PackError."""
    names = set()
    for p in custodian_config.get('policies', ()):
        names |= settings.referenced(p)
    if not names:
        return
    for a in accounts_config.get('accounts', ()):
        label = a.get('name', a.get('account_id'))
        a['vars'] = settings.validate(
            a.get('vars') or {}, source=f"{source}: account {label} vars", names=names)
        regions = list(cli_regions or a.get('regions') or ())
        if 'global_region' in names and regions and 'all' not in regions:
            if a['vars']['global_region'] not in regions:
                raise PackError(
                    f"{source}: account {label} is swept in {', '.join(regions)} but its "
                    f"global services are checked in global_region "
                    f"{a['vars']['global_region']}; add that region (-r) or change "
                    f"global_region")


ACCOUNTS_HINT = ('generate it from AWS Organizations with `c7n-org aws-accounts -f accounts.yml` '
                 '(README: Run modes)')
BUNDLE_HINT = '`custodian-ext bundle policies/detect -o build/detect.yml`'


def _read_yaml(path, what, hint):
    import yaml
    if os.path.isdir(path):
        raise PackError(f"{what} {path} is a folder; {hint}")
    if not os.path.isfile(path):
        raise PackError(f"{what} {path} not found; {hint}")
    try:
        with open(path) as fh:
            return yaml.safe_load(fh)
    except yaml.YAMLError as e:
        raise PackError(settings.yaml_error(path, e)) from None


def check_accounts_file(path):
    """The accounts file c7n-org is given: present, and every AWS account reachable."""
    data = _read_yaml(path, 'accounts file', ACCOUNTS_HINT)
    if not isinstance(data, dict) or not any(
            k in data for k in ('accounts', 'subscriptions', 'projects', 'tenancies')):
        raise PackError(f"{path}: no 'accounts:' list; {ACCOUNTS_HINT}")
    for i, a in enumerate(data.get('accounts') or ()):
        if not isinstance(a, dict):
            raise PackError(f"{path}: accounts entry #{i + 1} is not a mapping")
        account_id = a.get('account_id')
        label = a.get('name') or account_id or f"#{i + 1}"
        if not isinstance(account_id, str) or not re.match(r'^\d{12}$', account_id):
            raise PackError(
                f"{path}: account {label}: account_id {account_id!r} must be a 12-digit id "
                f"in quotes, like '123456789012'")
        if not a.get('name'):
            raise PackError(f"{path}: account {account_id} has no name; add name: <short name> "
                            f"(it names the account's output folder)")
        if not a.get('role') and not a.get('profile'):
            raise PackError(
                f"{path}: account {label} ({account_id}) has no role; add "
                f"role: arn:aws:iam::{account_id}:role/OrganizationAccountAccessRole "
                f"(or the role c7n-org should assume there), or a profile")
    return data


def check_policy_selection(path, policies=(), policy_tags=()):
    """The -u file exists and every -p name and -l tag selects something."""
    from c7n_org.cli import comma_expand
    data = _read_yaml(path, 'policy file',
                      f"c7n-org -u takes one file; build it with {BUNDLE_HINT}")
    if not isinstance(data, dict) or not isinstance(data.get('policies'), list):
        raise PackError(f"{path}: not a policy file (no top-level 'policies:' list)")
    items = [p for p in data['policies'] if isinstance(p, dict)]
    known_tags = sorted({t for p in items for t in (p.get('tags') or ())})
    for tag in comma_expand(policy_tags):
        if tag not in known_tags:
            close = difflib.get_close_matches(tag, known_tags, n=1, cutoff=0.6)
            hint = f"did you mean '{close[0]}'?" if close else (
                'tags in use: ' + ', '.join(known_tags[:40]))
            raise PackError(f"-l {tag}: no policy in {path} has this tag; {hint}")
    names = [p.get('name') for p in items]
    for name in comma_expand(policies):
        if name not in names:
            close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
            hint = f"; did you mean '{close[0]}'?" if close else ''
            raise PackError(f"-p {name}: no policy of that name in {path}{hint}")
    tags = comma_expand(policy_tags)
    if tags and not any(set(tags) <= set(p.get('tags') or ()) for p in items):
        raise PackError(f"-l {' -l '.join(tags)}: no policy in {path} has all of these tags "
                        f"(c7n-org selects policies carrying every -l tag)")


def check_org_credentials(accounts_config):
    """c7n-org assumes each account's role with the caller's credentials: they must work."""
    if not any(a.get('role') for a in accounts_config.get('accounts') or ()):
        return
    import boto3
    session = boto3.Session()
    try:
        preflight(session, session.region_name or 'us-east-1')
    except PackError as e:
        raise PackError(f"{e} (c7n-org assumes each account's role with them)") from None


def _c7n_org_command():
    try:
        import click
        ctx = click.get_current_context(silent=True)
    except ImportError:
        return None
    return ctx.info_name if ctx else None


def _c7n_org_init(original):
    import inspect
    signature = inspect.signature(original)

    def init(*args, **kw):
        import jsonschema
        bound = signature.bind(*args, **kw)
        config, use = bound.arguments['config'], bound.arguments.get('use')
        try:
            try:
                check_accounts_file(config)
                if use:
                    check_policy_selection(use, bound.arguments.get('policies') or (),
                                           bound.arguments.get('policy_tags') or ())
                accounts_config, custodian_config, executor = original(*args, **kw)
            except jsonschema.ValidationError as e:
                where = '/'.join(str(p) for p in e.absolute_path)
                raise PackError(f"{config}: {e.message}" + (f" (at {where})" if where else ''))
            check_accounts(accounts_config, custodian_config, config, _cli_regions())
            if _c7n_org_command() == 'run' and accounts_config.get('accounts') and \
                    custodian_config.get('policies'):
                check_org_credentials(accounts_config)
        except (PackError, settings.SettingsError) as e:
            sys.stderr.write(f"c7n-org: error: {e}\n")
            sys.exit(1)
        return accounts_config, custodian_config, executor
    return init


def _c7n_org_validate(original):
    """``c7n-org validate`` does not call init: check the pack's settings there too."""
    def validate(config=None, use=None, **kw):
        import yaml
        from c7n_org.cli import accounts_iterator, filter_accounts, filter_policies, comma_expand
        try:
            accounts_config = check_accounts_file(config)
            check_policy_selection(use, kw.get('policy') or (), kw.get('policy_tags') or ())
            with open(use) as fh:
                custodian_config = yaml.safe_load(fh)
            accounts_config['accounts'] = list(accounts_iterator(accounts_config))
            filter_accounts(accounts_config, comma_expand(kw.get('tags')),
                            kw.get('accounts'), kw.get('not_accounts'))
            filter_policies(custodian_config, comma_expand(kw.get('policy_tags')),
                            comma_expand(kw.get('policy')), kw.get('resource'))
            check_accounts(accounts_config, custodian_config, config)
        except (PackError, settings.SettingsError) as e:
            sys.stderr.write(f"c7n-org: error: {e}\n")
            sys.exit(1)
        return original(config=config, use=use, **kw)
    return validate


def install_c7n_org():
    from c7n_org import cli as org_cli
    _wrap(org_cli, 'init', _c7n_org_init)
    _wrap(org_cli.validate, 'callback', _c7n_org_validate)


def _lambda_provision(original):
    def provision(self):
        # c7n-org, and any other way a pack function is deployed: refuse a
        # bad schedule or a missing role before the function is created.
        from custodian_ext import periodic
        if periodic.is_pack_function(self.policy.data):
            from c7n.utils import get_partition, local_session
            periodic.check_deploy(self.policy.data, local_session(self.policy.session_factory),
                                  self.policy.options.account_id,
                                  get_partition(self.policy.options.region))
        return original(self)
    return provision


def install():
    global _INSTALLED
    if _INSTALLED:
        return
    _INSTALLED = True
    _wrap(Policy, 'get_variables', _policy_get_variables)
    _wrap(Policy, 'is_runnable', _is_runnable)
    _wrap(Policy, 'validate', _policy_validate)
    from c7n.policy import LambdaMode
    _wrap(LambdaMode, 'provision', _lambda_provision)
    install_schema()
    # Only in the console scripts: Lambda packages carry neither the CLI's
    # dependencies nor c7n-org.
    if program() == 'custodian' or 'c7n.cli' in sys.modules:
        install_cli()
    if program() == 'c7n-org' or 'c7n_org.cli' in sys.modules:
        install_c7n_org()
    if program() in ('custodian', 'c7n-org'):
        # the performance layer (CUSTODIAN_EXT_PERF=0 switches it off) and retries
        from custodian_ext.sessions import install as install_sessions
        install_sessions(c7n_org=program() == 'c7n-org')
