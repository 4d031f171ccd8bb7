"""Lambda entry point of the pack's periodic policies (``handler: custodian_ext.handler.run``).

c7n's own handler (``custodian_policy.run``) imports only ``c7n.handler``,
so the pack's filters would be unknown when the policy in ``config.json``
is loaded. This one imports the pack first, and installs the patches of the
``lambda`` program (settings checks, ``skipped.json``), not the CLI's.
"""
import custodian_ext  # noqa: F401  registers the pack's filters and actions
from c7n import handler

import custodian_ext.patches as patches

patches.install('lambda')


def run(event, context):
    return handler.dispatch_event(event, context)
