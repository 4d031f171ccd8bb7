"""Checks before the pack's Lambda functions deploy: schedule, role and region."""
import custodian_ext.periodic as periodic
import custodian_ext.react as react
import custodian_ext.settings as settings


def check_deploys(options, session, identity, region, values=None):
    """Lambda policies of the pack: schedule, role and region checked before anything deploys."""
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
    regions = [r for r in options.regions or () if r != 'all']
    for data in functions:
        periodic.check_deploy(data, session, identity['Account'], partition)
        react.check_regions(data, regions, identity['Account'])
