"""Bad-input checks for ``custodian run`` and ``c7n-org``, as wrappers ``make(original)``.

Each ``make_*`` takes the function it wraps and returns its replacement, for
the pack's table of patches (``custodian_ext.hooks`` installs them). Each
replacement only adds a check before calling the original; a failed check
raises ``PackError`` with one line, which the pack's CLI hooks print as
``custodian: error: ...`` / ``c7n-org: error: ...``.

- ``make_custodian_run`` wraps ``c7n.commands.run`` (inside the pack's own run
  hook, after its credential check): every ``-r`` region must exist and be
  enabled for the account (``custodian_ext.regions``). Stock c7n silently
  skips a region it does not know, and every policy errors in a region the
  account has not enabled.
- ``make_org_init`` wraps ``c7n_org.cli.init`` (inside the pack's init hook):
  the accounts file lists each account id and name once
  (``custodian_ext.accounts``), the ``-u`` policy file loads
  (``custodian_ext.policyfile``; c7n-org would run nothing and exit 0), and
  every ``-r`` region name exists.
- ``make_org_validate`` wraps ``c7n_org.cli.validate.callback``: the accounts
  file's duplicates, as for ``run``.

Leaf functions, no side effect on import.
"""
import functools
import inspect
import os


def _read_yaml(path):
    import yaml
    try:
        with open(path) as fh:
            return yaml.safe_load(fh)
    except (OSError, yaml.YAMLError):
        return None  # the pack's own accounts and policy file checks say what is wrong


def make_custodian_run(original):
    @functools.wraps(original)
    def run(options):
        from c7n.resources.aws import get_profile_session

        from custodian_ext import regions
        wanted = [r for r in (getattr(options, 'regions', None) or ()) if r != 'all']
        if wanted:
            regions.check_names(wanted)
            session = get_profile_session(options)
            region = wanted[0]
            try:
                account = session.client('sts', region_name=region).get_caller_identity().get(
                    'Account')
            except Exception:  # noqa: BLE001 - the pack's credential check reports this
                account = None
            regions.check_enabled(session, wanted, region, account)
        return original(options)
    return run


def check_org_inputs(config, use=None, cli_regions=()):
    """The accounts file, the ``-u`` file and the ``-r`` names of a c7n-org command."""
    from custodian_ext import accounts, policyfile, regions
    data = _read_yaml(config) if config and os.path.isfile(config) else None
    if isinstance(data, dict):
        accounts.check_unique(data, config)
    if use and os.path.isfile(use):
        policies = _read_yaml(use)
        if isinstance(policies, dict) and isinstance(policies.get('policies'), list):
            policyfile.check_policies(policies, use)
    regions.check_names([r for r in cli_regions or () if r != 'all'])
    if isinstance(data, dict):
        for a in data.get('accounts') or ():
            if isinstance(a, dict) and isinstance(a.get('regions'), list):
                regions.check_names(
                    [r for r in a['regions'] if isinstance(r, str) and r != 'all'],
                    source=f"{config}: account {a.get('name') or a.get('account_id')} region")


def _click_regions():
    try:
        import click
        ctx = click.get_current_context(silent=True)
    except ImportError:
        return ()
    return tuple((ctx.params.get('region') if ctx else None) or ())


def make_org_init(original):
    signature = inspect.signature(original)

    @functools.wraps(original)
    def init(*args, **kw):
        bound = signature.bind(*args, **kw)
        check_org_inputs(bound.arguments.get('config'), bound.arguments.get('use'),
                         _click_regions())
        return original(*args, **kw)
    return init


def make_org_validate(original):
    @functools.wraps(original)
    def validate(config=None, use=None, **kw):
        check_org_inputs(config, use)
        return original(config=config, use=use, **kw)
    return validate

