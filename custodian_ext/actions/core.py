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

from custodian_ext.settings import is_placeholder, or_placeholder

log = logging.getLogger('custodian.ext.actions')

DONE, SKIPPED, FAILED = 'done', 'skipped', 'failed'


# `custodian validate` checks policies without --vars-file, so an option fed from a setting
# ('{key_grace_days}') is still the literal reference then. The one definition is in
# settings.py; these names are kept for code written against them.
var_or = or_placeholder
is_var_ref = is_placeholder


def utcnow():
    import datetime
    return datetime.datetime.now(datetime.timezone.utc)


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

    def client(self, service, region=None):
        from c7n.utils import local_session
        return local_session(self.manager.session_factory).client(
            service, **({'region_name': region} if region else {}))

    def require_filter(self, filter_class, why):
        """validate(): refuse a policy without ``filter_class``, whose annotations the action
        reads."""
        from c7n.exceptions import PolicyValidationError
        if not any(isinstance(f, filter_class) for f in self.manager.iter_filters()):
            raise PolicyValidationError(
                f"{self.type} {why}; policy {self.manager.data.get('name')} needs the "
                f"{filter_class.type} filter")
        return self

    def call(self, method, **params):
        """One API call, retried on throttling (c7n's ``manager.retry``)."""
        return self.manager.retry(method, **params)

    def process(self, resources):
        return self.conclude(resources, [self.guarded(r, self.process_resource) for r in resources])

    def guarded(self, resource, step, *args):
        """``step(resource, *args)``, or a ``failed`` result if it raises.

        Actions that work in phases (start every resource, wait for all, then
        finish each) call their phases through this, then ``conclude``.
        """
        try:
            return step(resource, *args)
        except Exception as e:  # one resource's failure must not stop the others
            rid = self.resource_id(resource)
            log.error('%s: %s failed: %s', self.type, rid, e)
            return result(rid, FAILED, f'{type(e).__name__}: {e}')

    def conclude(self, resources, results):
        """Record one result per resource, write them, raise if any failed."""
        for r, res in zip(resources, results):
            res.setdefault('action', self.type)
            res.setdefault('time', time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()))
            r.setdefault('c7n:action-results', []).append(res)
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
