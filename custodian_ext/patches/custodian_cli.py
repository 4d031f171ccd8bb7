"""Wrappers of the ``custodian`` console script (``c7n.cli`` and ``c7n.commands``).

For runs of the pack's policies: the vars file and settings are checked before
any API call, credentials and the endpoint are checked, the region list gets
``global_region`` first, the pack's Lambda functions are checked before any
deploys, and folders are read as their files. Errors print as one line. Runs
of other policies are left to c7n.
"""
import os
import sys

import custodian_ext.lifetime as lifetime
import custodian_ext.settings as settings
from custodian_ext.errors import PackError


def checked_vars_file(original):
    """``c7n.commands._load_vars``: types and misspelt keys of the pack's settings."""
    def load_vars(options):
        from custodian_ext.policyfiles import any_pack_policy, read_policies
        values = original(options)
        if values is None or not any_pack_policy(read_policies(options.configs)):
            return values  # stock policies: their vars are c7n's business
        # Required keys are checked once we know which settings the policies use.
        present = [k for k in values if k in settings.SETTINGS]
        return settings.validate(values, source=options.vars_file, names=present)
    return load_vars


def _vars_source(options):
    return options.vars_file or 'no --vars-file given (pass --vars-file policies/vars.yml)'


def checked_run(original):
    """``c7n.commands.run``: the pack's checks, for runs holding the pack's policies."""
    def run(options):
        from c7n import commands as c7n_commands
        from c7n.resources.aws import get_profile_session
        from custodian_ext.deploys import check_deploys
        from custodian_ext.policyfiles import any_pack_policy, policy_files, read_policies
        from custodian_ext.preflight import preflight
        import custodian_ext.regions as regions
        from custodian_ext.regions import place_global_region
        import custodian_ext.runcache as runcache
        policies = read_policies(options.configs)
        if not any_pack_policy(policies):
            runcache.use_for_run(False)  # c7n's own cache, as stock
            return original(options)
        # Settings first: a bad vars file stops the run before any API call.
        values = c7n_commands._load_vars(options) or {}
        names = set()
        for p in policies:
            names |= settings.referenced(p)
        if names:
            values = settings.validate(values, source=_vars_source(options), names=names)
        session = get_profile_session(options)
        default_region = session.region_name or 'us-east-1'
        if 'global_region' in names:
            options.regions = place_global_region(
                options.regions, values['global_region'], default_region)
        region = next((r for r in (options.regions or ()) if r != 'all'), default_region)
        identity = preflight(session, region)
        if not options.account_id and not options.assume_role and identity.get('Account'):
            # c7n would ask STS again, with this session, before it loads the policies
            options.account_id = identity['Account']
        # c7n drops a region it does not know (a typo reads as clean), and every policy
        # errors in a region the account has not enabled: one line instead
        regions.check_run(options.regions, session, region, identity.get('Account'))
        check_deploys(options, session, identity, region, values)
        # A folder as its files: c7n's folder loader checks types before settings are
        # substituted and rejects a list setting ('{trusted_accounts}') where a list
        # goes; its file loader allows for such placeholders.
        options.configs = policy_files(options.configs)
        return original(options)
    return run


def one_line_errors(original):
    """``c7n.cli.main``: the pack's errors as one line; ``validate`` takes folders too."""
    def main(args=None):
        from custodian_ext.policyfiles import any_pack_policy, policy_files, read_policies
        argv = list(sys.argv[1:] if args is None else args)
        try:
            if argv[:1] == ['validate']:
                # c7n's validate takes files only; accept folders of pack policies as
                # `run` does (other folders: c7n's own answer).
                expanded = []
                for a in argv[1:]:
                    if os.path.isdir(a) and any_pack_policy(read_policies([a])):
                        expanded.extend(policy_files([a]))
                    else:
                        expanded.append(a)
                args = ['validate'] + expanded
            quick = args is None and argv[:1] == ['run'] and quick_exit_wanted()
            try:
                result = original(args)
            except SystemExit as e:
                if quick and lifetime.can_exit_quickly():
                    lifetime.quick_exit(e.code)
                raise
            if quick and lifetime.can_exit_quickly():
                lifetime.quick_exit(result)
            return result
        except (PackError, settings.SettingsError) as e:
            sys.stderr.write(f"custodian: error: {e}\n")
            sys.exit(1)
    return main


def quick_exit_wanted():
    """The console script's sweep of pack policies, performance layer on: its objects need
    not be freed one by one at exit (custodian_ext.lifetime)."""
    import custodian_ext.patches as patches
    import custodian_ext.runcache as runcache
    return patches.performance_enabled() and runcache.in_use() and lifetime.console()
