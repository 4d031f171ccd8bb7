"""Cloud Custodian policy pack for responding to a suspected AWS account compromise.

Importing this package registers the pack's filters, actions and conditions
with c7n and installs its hooks (see ``custodian_ext.hooks``). The stock
``custodian`` and ``c7n-org`` commands import it through
``custodian_ext.pth``; Lambda functions through ``custodian_ext.handler``.
"""
from custodian_ext import hooks

hooks.install()

# One line per module that registers elements with c7n.
from custodian_ext.filters import credentials  # noqa: E402,F401
from custodian_ext.filters import instances  # noqa: E402,F401
from custodian_ext.filters import pre_incident_image  # noqa: E402,F401
from custodian_ext.filters import quarantine  # noqa: E402,F401
from custodian_ext.actions import restore_ebs  # noqa: E402,F401
from custodian_ext.actions import restore_rds  # noqa: E402,F401
from custodian_ext.actions import restore_s3  # noqa: E402,F401
from custodian_ext.filters import rotation  # noqa: E402,F401
from custodian_ext.actions import cloudtrail  # noqa: E402,F401
from custodian_ext.actions import isolate  # noqa: E402,F401
from custodian_ext.actions import keys  # noqa: E402,F401
from custodian_ext.actions import passwords  # noqa: E402,F401
from custodian_ext.actions import sessions  # noqa: E402,F401
from custodian_ext.actions import shares as _action_shares  # noqa: E402,F401
from custodian_ext.actions import snapshot  # noqa: E402,F401
from custodian_ext.actions import users  # noqa: E402,F401
from custodian_ext.filters import backups  # noqa: E402,F401
from custodian_ext.filters import buckets  # noqa: E402,F401
from custodian_ext.filters import containers  # noqa: E402,F401
from custodian_ext.filters import shares as _filter_shares  # noqa: E402,F401
from custodian_ext import resources  # noqa: E402,F401
from custodian_ext.filters import advisor  # noqa: E402,F401
from custodian_ext.filters import contacts  # noqa: E402,F401
from custodian_ext.filters import cost  # noqa: E402,F401
from custodian_ext.filters import event_history  # noqa: E402,F401
from custodian_ext.filters import activity  # noqa: E402,F401
from custodian_ext.filters import organization  # noqa: E402,F401
from custodian_ext.filters import principals  # noqa: E402,F401
from custodian_ext.filters import roles_anywhere  # noqa: E402,F401
from custodian_ext.filters import trails  # noqa: E402,F401
from custodian_ext.filters import usage  # noqa: E402,F401
from custodian_ext.filters import exposed_key  # noqa: E402,F401
from custodian_ext.actions import notice  # noqa: E402,F401
from custodian_ext.actions import assumable  # noqa: E402,F401
from custodian_ext import react  # noqa: E402,F401
