"""Cloud Custodian policy pack for responding to a suspected AWS account compromise.

Importing this package registers the pack's filters, actions, resources and
execution mode with c7n, and patches nothing. The programs install the
pack's patches themselves (``custodian_ext.patches.install(program)``): the
stock ``custodian`` and ``c7n-org`` commands through ``custodian_ext.pth``,
Lambda functions through ``custodian_ext.handler``.
"""
# One line per module that registers elements with c7n. Imported as modules,
# not bound to names here: `custodian_ext.sessions`-style name clashes between
# a package attribute and a submodule confuse readers and patch tables alike.
import custodian_ext.actions.assumable  # noqa: F401
import custodian_ext.actions.cloudtrail  # noqa: F401
import custodian_ext.actions.isolate  # noqa: F401
import custodian_ext.actions.keys  # noqa: F401
import custodian_ext.actions.notice  # noqa: F401
import custodian_ext.actions.passwords  # noqa: F401
import custodian_ext.actions.restore_ebs  # noqa: F401
import custodian_ext.actions.restore_rds  # noqa: F401
import custodian_ext.actions.restore_s3  # noqa: F401
import custodian_ext.actions.sessions  # noqa: F401
import custodian_ext.actions.shares  # noqa: F401
import custodian_ext.actions.snapshot  # noqa: F401
import custodian_ext.actions.users  # noqa: F401
import custodian_ext.filters.activity  # noqa: F401
import custodian_ext.filters.advisor  # noqa: F401
import custodian_ext.filters.backups  # noqa: F401
import custodian_ext.filters.buckets  # noqa: F401
import custodian_ext.filters.contacts  # noqa: F401
import custodian_ext.filters.containers  # noqa: F401
import custodian_ext.filters.cost  # noqa: F401
import custodian_ext.filters.credentials  # noqa: F401
import custodian_ext.filters.event_history  # noqa: F401
import custodian_ext.filters.exposed_key  # noqa: F401
import custodian_ext.filters.instances  # noqa: F401
import custodian_ext.filters.object_changes  # noqa: F401
import custodian_ext.filters.organization  # noqa: F401
import custodian_ext.filters.pre_incident_image  # noqa: F401
import custodian_ext.filters.principals  # noqa: F401
import custodian_ext.filters.quarantine  # noqa: F401
import custodian_ext.filters.roles_anywhere  # noqa: F401
import custodian_ext.filters.rotation  # noqa: F401
import custodian_ext.filters.shares  # noqa: F401
import custodian_ext.filters.trail_bucket  # noqa: F401
import custodian_ext.filters.trails  # noqa: F401
import custodian_ext.filters.usage  # noqa: F401
import custodian_ext.react  # noqa: F401
import custodian_ext.resources  # noqa: F401
