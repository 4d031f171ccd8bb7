"""What every pack action shares: per-resource results, fail-closed reporting.

c7n writes ``resources.json`` before actions run, so an action's outcome must
be written separately. A pack action handles each resource on its own,
records ``done``, ``skipped`` (with why) or ``failed`` (with why) for it, writes
all results to ``action-results-<action>.json`` in the policy's output, and
then raises if any resource failed, so that ``custodian run`` exits non-zero
and the report shows the run as errored instead of contained.

Subclasses implement ``process_resource(resource) -> Result``. A safety step
that fails (evidence export, snapshot) raises or returns ``failed`` before
the destructive step: nothing after it runs for that resource.
"""
import json
import logging
import time

from c7n.actions import BaseAction
from c7n.exceptions import PolicyExecutionError

log = logging.getLogger('custodian.ext.actions')

DONE, SKIPPED, FAILED = 'done', 'skipped', 'failed'


def result(resource_id, status, reason='', **details):
    out = {'resource_id': resource_id, 'status': status, 'reason': reason}
    out.update(details)
    return out


class PackAction(BaseAction):
    """Base class for the pack's actions. See the module docstring."""

    #: the resource key that identifies a resource in results
    id_key = None

    def resource_id(self, resource):
        key = self.id_key or self.manager.resource_type.id
        return resource.get(key, '?')

    def process_resource(self, resource):  # pragma: no cover - abstract
        raise NotImplementedError

    def process(self, resources):
        results = []
        for r in resources:
            rid = self.resource_id(r)
            try:
                res = self.process_resource(r)
            except Exception as e:  # one resource's failure must not stop the others
                log.error('%s: %s failed: %s', self.type, rid, e)
                res = result(rid, FAILED, f'{type(e).__name__}: {e}')
            res.setdefault('action', self.type)
            res.setdefault('time', time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()))
            r.setdefault('c7n:action-results', []).append(res)
            results.append(res)
        self.write_results(results)
        failed = [x for x in results if x['status'] == FAILED]
        if failed:
            raise PolicyExecutionError(
                '%s failed for %d of %d resources: %s' % (
                    self.type, len(failed), len(results),
                    '; '.join(f"{x['resource_id']}: {x['reason']}" for x in failed[:5])))
        return results

    def write_results(self, results):
        output = getattr(self.manager.ctx, 'output', None)
        if output is not None:
            output.write_file(f'action-results-{self.type}.json',
                              json.dumps(results, indent=2, default=str))
