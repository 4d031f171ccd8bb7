"""Hooks into the stock ``custodian`` and ``c7n-org`` commands.

Cloud Custodian has no extension points for checking variables or for turning
errors into a readable line, so the pack wraps a few c7n functions when it is
imported. Each wrapper calls the original and only adds checks; none changes
what a valid policy does.

- ``Policy.get_variables`` (everywhere, Lambda included): every pack setting a
  policy refers to is checked, and defaulted, before it is substituted.
- ``custodian`` (``c7n.cli.main``, ``c7n.commands``): the ``--vars-file`` is
  checked before any API call; ``run`` checks that credentials and the
  endpoint work and that the region list includes ``global_region``; pack
  errors print as one line with exit status 1; ``validate`` accepts folders,
  and validates policies with example settings substituted (it has no
  ``--vars-file``, and c7n's date filters reject a literal
  ``'{incident_start}'``). ``run`` on a folder validates each policy before
  substituting variables as well; that check, too, sees example settings.
- ``c7n-org`` (``c7n_org.cli.init``): every account's ``vars`` and region list
  are checked before any worker starts.

Global services (IAM, Organizations, Route 53 Domains, the account) are
checked once per account: their policies carry the condition
``region == {global_region}``. ``custodian run`` places such policies in the
first region it is given, so the run hook puts ``global_region`` first.
"""
import functools
import logging
import os
import sys

from c7n.policy import Policy

from custodian_ext import settings

log = logging.getLogger('custodian.ext')

_INSTALLED = False


class PackError(Exception):
    """An error whose message is one line a user can act on."""


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
                checked = settings.validate(variables or {}, source=source, names=names)
            except settings.SettingsError as e:
                raise settings.SettingsError(f"policy {self.name}: {e}") from None
            if variables is None:
                variables = checked
            else:
                variables.update(checked)
        return original(self, variables)
    return get_variables


# Set while `custodian validate` runs: it has no --vars-file, so policies that
# use pack settings are validated with these (plus the defaults) substituted.
VALIDATE_EXAMPLES = {'allowed_regions': ['us-east-1'],
                     'incident_start': settings.TIMESTAMP_EXAMPLE}
_VALIDATING = False


def _policy_validate(original):
    def validate(self):
        if settings.referenced(self.data):
            if _VALIDATING:
                self.expand_variables(self.get_variables(dict(VALIDATE_EXAMPLES)))
            else:
                # `custodian run <folder>` validates each policy before it substitutes
                # the --vars-file values (and again after): validate a copy with
                # example settings, and leave the policy to be expanded for real.
                import copy
                trial = Policy(copy.deepcopy(self.data), self.options, session_factory=getattr(
                    self, 'session_factory', None))
                trial.expand_variables(trial.get_variables(dict(VALIDATE_EXAMPLES)))
                return original(trial)
        return original(self)
    return validate


def _validate_command(original):
    def validate(options):
        global _VALIDATING
        _VALIDATING = True
        try:
            return original(options)
        finally:
            _VALIDATING = False
    return validate


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
    """Leave ``skipped.json`` where a policy skipped by its conditions would write.

    Without it, "skipped on purpose" (a global policy outside global_region,
    R3.3 in an allowed region) and "never ran" look the same in the output,
    and the report could not tell a missing run from a clean one.
    """
    import json
    if not policy.options.output_dir:
        return
    with policy.ctx as ctx:
        ctx.output.write_file(SKIP_FILE, json.dumps({
            'policy': policy.name, 'region': policy.options.region,
            'account_id': policy.options.account_id,
            'reason': reason}))


def skip_running_policy(manager, reason):
    """Mark the policy ``manager`` runs for as skipped, with the reason, from inside the run.

    For a check that cannot apply to this account (R3.2 without a Business or
    Enterprise support plan): the run ends with no resources, ``skipped.json``
    says why, and the log says so too, so it never reads as "clean".
    """
    import json
    policy = manager.ctx.policy
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
    """Fail fast, in one line, when no API call could succeed."""
    import botocore.exceptions as bexc
    try:
        if session.get_credentials() is None:
            raise PackError(NO_CREDENTIALS)
        session.client('sts', region_name=region).get_caller_identity()
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
        preflight(session, region)
        return original(options)
    return run


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
    _wrap(c7n_commands, 'validate', _validate_command)
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


def _c7n_org_init(original):
    def init(config, use, *args, **kw):
        accounts_config, custodian_config, executor = original(config, use, *args, **kw)
        try:
            check_accounts(accounts_config, custodian_config, config, _cli_regions())
        except (PackError, settings.SettingsError) as e:
            sys.stderr.write(f"c7n-org: error: {e}\n")
            sys.exit(1)
        return accounts_config, custodian_config, executor
    return init


def install_c7n_org():
    from c7n_org import cli as org_cli
    _wrap(org_cli, 'init', _c7n_org_init)


def install():
    global _INSTALLED
    if _INSTALLED:
        return
    _INSTALLED = True
    _wrap(Policy, 'get_variables', _policy_get_variables)
    _wrap(Policy, 'is_runnable', _is_runnable)
    _wrap(Policy, 'validate', _policy_validate)
    # Only in the console scripts: Lambda packages carry neither the CLI's
    # dependencies nor c7n-org.
    if program() == 'custodian' or 'c7n.cli' in sys.modules:
        install_cli()
    if program() == 'c7n-org' or 'c7n_org.cli' in sys.modules:
        install_c7n_org()
