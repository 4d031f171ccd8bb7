"""Skip records: ``skipped.json`` where a policy would have written its output.

Without it, "skipped on purpose" (a global policy outside global_region, R3.3
in an allowed region, R3.2 without a support plan) and "never ran" look the
same in the output, and the report could not tell a missing run from a clean
one. A leaf module.
"""
import json
import logging
import time

from custodian_ext.outputs import write_atomic

log = logging.getLogger('custodian.ext')

SKIP_FILE = 'skipped.json'


def record_skip(policy, reason='execution conditions'):
    """Leave ``skipped.json`` (and a minimal ``metadata.json``) where the policy would write.

    Only the output is opened: entering the policy's full execution context
    would create (and, in c7n-org, assume) an AWS session for a policy that
    makes no API call.
    """
    from c7n.output import blob_outputs
    if not policy.options.output_dir:
        return
    output = blob_outputs.select(policy.options.output_dir, policy.ctx)
    note = {'policy': policy.name, 'region': policy.options.region,
            'account_id': policy.options.account_id, 'reason': reason}
    output.__enter__()
    try:
        # not fsync'd: written only for a policy that was skipped, the file says so by
        # being there (a crash may leave it empty or absent: skipped, or missing, which
        # the report shows as an error; never clean); two fsyncs per skipped policy were
        # a sixth of a c7n-org worker's time (most policies skip outside us-east-1); no
        # indent: Python's C encoder takes none, and a skip's metadata is read, not edited
        write_atomic(output, SKIP_FILE, json.dumps(note), durable=False)
        write_atomic(output, 'metadata.json', json.dumps({
            'policy': policy.data,
            'config': {'region': policy.options.region,
                       'account_id': policy.options.account_id},
            'execution': {'start': time.time(), 'skipped': True},
            'metrics': []}, default=str), durable=False)
    finally:
        output.__exit__()


def skip_running_policy(manager, reason):
    """Mark the policy ``manager`` runs for as skipped, with the reason, from inside the run.

    For a check that cannot apply to this account (R3.2 without a Business or
    Enterprise support plan): the run ends with no resources, ``skipped.json``
    says why, and the log says so too, so it never reads as "clean".
    """
    policy = manager.ctx.policy
    policy._ext_skipped = reason  # not a clean run: nothing to export or resolve
    log.warning("policy %s skipped in %s: %s", policy.name, manager.config.region, reason)
    output = getattr(manager.ctx, 'output', None)
    if output is not None and policy.options.output_dir:
        write_atomic(output, SKIP_FILE, json.dumps({
            'policy': policy.name, 'region': manager.config.region,
            'account_id': manager.config.account_id, 'reason': reason}))
