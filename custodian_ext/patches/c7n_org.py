"""Wrappers of the ``c7n-org`` console script (``c7n_org.cli``).

For runs of the pack's policies, before any worker starts: the accounts file
(present, every account with an id, a name and a role or profile), the ``-u``
file (present, one file), ``-p`` / ``-l`` (each selects a policy), every
account's ``vars`` and region list, and for ``run`` the caller's credentials.
Runs of other policies are left to c7n-org.
"""
import sys

import custodian_ext.settings as settings
from custodian_ext.errors import PackError


def c7n_org_command():
    """The c7n-org subcommand being run (``run``, ``validate``...), or None."""
    try:
        import click
        ctx = click.get_current_context(silent=True)
    except ImportError:
        return None
    return ctx.info_name if ctx else None


def cli_regions():
    try:
        import click
        ctx = click.get_current_context(silent=True)
    except ImportError:
        return ()
    return tuple((ctx.params.get('region') if ctx else None) or ())


def _uses_pack(use):
    """True when the ``-u`` file holds a policy of the pack (or cannot be read: say why)."""
    from custodian_ext.accounts_file import read_policy_file
    from custodian_ext.policyfiles import any_pack_policy
    if not use:
        return False
    try:
        return any_pack_policy(read_policy_file(use))
    except PackError:
        return False  # c7n-org reports a missing or broken -u file itself


def checked_init(original):
    """``c7n_org.cli.init``: the pack's checks, then (performance layer on) warm the models."""
    import inspect
    signature = inspect.signature(original)

    def init(*args, **kw):
        import jsonschema
        import custodian_ext.accounts_file as accounts_file
        import custodian_ext.policyfiles as policyfiles
        import custodian_ext.patches as patches
        import custodian_ext.perf as perf
        from custodian_ext.preflight import check_org_credentials
        import custodian_ext.runcache as runcache
        bound = signature.bind(*args, **kw)
        config, use = bound.arguments['config'], bound.arguments.get('use')
        if not _uses_pack(use):
            runcache.use_for_run(False)  # c7n's own cache, as stock (workers inherit it)
            return original(*args, **kw)
        try:
            try:
                accounts = accounts_file.check_accounts_file(config)
                accounts_file.check_regions(accounts, config, cli_regions())
                accounts_file.check_policy_selection(
                    use, bound.arguments.get('policies') or (),
                    bound.arguments.get('policy_tags') or ())
                # c7n-org does not check the -u file: each worker fails to load it and
                # c7n-org exits 0 having run nothing
                policyfiles.check_policies(accounts_file.read_yaml(
                    use, 'policy file', accounts_file.BUNDLE_HINT), use)
                accounts_config, custodian_config, executor = original(*args, **kw)
            except jsonschema.ValidationError as e:
                where = '/'.join(str(p) for p in e.absolute_path)
                raise PackError(f"{config}: {e.message}" + (f" (at {where})" if where else ''))
            accounts_file.check_accounts(accounts_config, custodian_config, config,
                                         cli_regions())
            if patches.performance_enabled():
                from custodian_ext.concurrency import threads
                threads('c7n-org')  # CUSTODIAN_EXT_THREADS: one line now, not per worker
            if c7n_org_command() == 'run' and accounts_config.get('accounts') and \
                    custodian_config.get('policies'):
                check_org_credentials(accounts_config)
        except (PackError, settings.SettingsError) as e:
            sys.stderr.write(f"c7n-org: error: {e}\n")
            sys.exit(1)
        if c7n_org_command() == 'run':
            # the workers share CloudTrail's rate limit and lookups per account-region
            import custodian_ext.shared_run as shared_run
            shared_run.start()
        if c7n_org_command() == 'run' and patches.performance_enabled() and \
                accounts_config.get('accounts') and custodian_config.get('policies'):
            # forked workers inherit the parsed models: each is parsed once per run
            perf.warm(custodian_config)
            executor = _ordered(executor, accounts_config)
            import custodian_ext.lifetime as lifetime
            lifetime.settle()  # before the workers fork: they inherit it, pages stay shared
        return accounts_config, custodian_config, executor
    return init


def _ordered(executor, accounts_config):
    """c7n-org's process pool, its jobs started each account's global region first
    (``custodian_ext.org_order``); c7n-org's --debug runs them in its own thread, as is."""
    from concurrent.futures import ProcessPoolExecutor
    import c7n_org.cli
    import custodian_ext.org_order as org_order
    from custodian_ext.settings import SETTINGS
    if executor is not ProcessPoolExecutor:
        return executor
    default = SETTINGS['global_region'].default

    def global_region(account):
        return (account.get('vars') or {}).get('global_region') or default
    expected = org_order.prepare(accounts_config.get('accounts') or [], cli_regions(),
                                 c7n_org.cli.resolve_regions)
    return org_order.ordered(executor, expected, global_region)


def checked_validate(original):
    """``c7n-org validate`` does not call init: check the pack's settings there too."""
    def validate(config=None, use=None, **kw):
        import yaml
        from c7n_org.cli import accounts_iterator, comma_expand, filter_accounts, filter_policies
        import custodian_ext.accounts_file as accounts_file
        if not _uses_pack(use):
            return original(config=config, use=use, **kw)
        try:
            accounts_config = accounts_file.check_accounts_file(config)
            accounts_file.check_policy_selection(
                use, kw.get('policy') or (), kw.get('policy_tags') or ())
            with open(use) as fh:
                custodian_config = yaml.safe_load(fh)
            accounts_config['accounts'] = list(accounts_iterator(accounts_config))
            filter_accounts(accounts_config, comma_expand(kw.get('tags')),
                            kw.get('accounts'), kw.get('not_accounts'))
            filter_policies(custodian_config, comma_expand(kw.get('policy_tags')),
                            comma_expand(kw.get('policy')), kw.get('resource'))
            accounts_file.check_accounts(accounts_config, custodian_config, config)
        except (PackError, settings.SettingsError) as e:
            sys.stderr.write(f"c7n-org: error: {e}\n")
            sys.exit(1)
        return original(config=config, use=use, **kw)
    return validate
