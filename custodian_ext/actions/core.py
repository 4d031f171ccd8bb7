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

Under stress (issue #15):

- Claims: each resource is claimed before it is touched
  (``custodian_ext.actions.claims``: a Parameter Store name created once), so
  two runs at once never act on one resource twice; after claiming, the
  action reads the resource again (``still_needed``) and skips what another
  run, or an earlier one, already did. Running a policy twice changes
  nothing the second time.
- Results are written after every resource, whole or not at all
  (``custodian_ext.outputs.write_atomic``): a run that dies leaves the
  results of every resource it finished.
- SIGINT and SIGTERM are deferred while a resource is handled
  (``custodian_ext.actions.interrupt``): the resource is finished, those not
  started are recorded as untouched, then the run stops (exit status 130 or
  143). Run the policy again to finish.
"""
import json
import logging
import time

from c7n.actions import BaseAction
from c7n.exceptions import PolicyExecutionError

from custodian_ext.actions import claims as claims_module
from custodian_ext.actions.interrupt import Deferred
from custodian_ext.outputs import write_atomic
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
    #: claim each resource before acting on it (custodian_ext.actions.claims)
    claims = True
    #: release a claim when done with the resource; False keeps it for its lease (a
    #: later action of the same policy, such as Custodian's ``delete``, depends on it)
    release_claims = True

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        own = cls.__dict__.get('get_permissions')
        if own is not None and not getattr(own, '_with_claims', False):
            def get_permissions(self, _own=own):
                return self.with_claim_permissions(_own(self))
            get_permissions._with_claims = True
            cls.get_permissions = get_permissions

    def get_permissions(self):
        return self.with_claim_permissions(super().get_permissions())

    get_permissions._with_claims = True

    def with_claim_permissions(self, perms):
        perms = tuple(perms or ())
        if self.claims:
            perms += claims_module.PERMISSIONS
        return tuple(dict.fromkeys(perms))

    def resource_id(self, resource):
        key = self.id_key or self.manager.resource_type.id
        return resource.get(key, '?')

    def process_resource(self, resource):  # pragma: no cover - abstract
        raise NotImplementedError

    def still_needed(self, resource):
        """After claiming: None if the resource still needs this action, else why not.

        Read the resource again here (not from the listing, which another run may
        have overtaken): a run that started with the same listing may have handled
        it already.
        """
        return

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
        return self.run_each(resources, self.process_resource)

    def run_each(self, resources, step):
        """``step(resource)`` for each resource, claimed, recorded after each, interruptible."""
        results = []
        with Deferred(f'{self.type} on the current resource') as signals:
            for r in resources:
                if signals.requested:
                    break
                results.append(self.handle(r, step))
                self.record(results)
        if signals.requested:
            handled = len(results)
            results += [self.untouched(r, signals.name) for r in resources[handled:]]
            self.conclude(resources, results, stop=False)
            log.error('%s: stopped by %s after %d of %d resource(s); results in '
                      'action-results-%s.json; run the policy again to finish',
                      self.type, signals.name, handled, len(resources), self.type)
            signals.stop()
        return self.conclude(resources, results)

    def untouched(self, resource, why):
        return result(self.resource_id(resource), FAILED,
                      f'untouched: the run was stopped ({why}) before this resource; run the '
                      f'policy again to finish')

    def handle(self, resource, step, *args):
        """Claim, check it is still needed, ``step``, release. Always a result."""
        skip = self.acquire(resource)
        if skip is not None:
            return skip
        try:
            try:
                why = self.still_needed(resource)
            except Exception as e:  # could not tell: do nothing
                return result(self.resource_id(resource), FAILED,
                              f'could not read it again before acting ({type(e).__name__}: {e}); '
                              f'nothing was done to it')
            if why:
                return result(self.resource_id(resource), SKIPPED, why)
            return self.guarded(resource, step, *args)
        finally:
            if self.release_claims:
                self.release(resource)

    def acquire(self, resource, lease=None):
        """Claim ``resource`` for this run: None, or the result to record instead."""
        if not self.claims:
            return None
        if getattr(self, '_claims', None) is None:
            self._claims = claims_module.Claims(self, lease)
        rid = self.resource_id(resource)
        try:
            why = self._claims.claim(rid)
        except claims_module.ClaimError as e:
            return result(rid, FAILED, str(e))
        if why:
            return result(rid, SKIPPED, why, claimed_elsewhere=True)
        return None

    def release(self, resource):
        if getattr(self, '_claims', None) is not None:
            self._claims.release(self.resource_id(resource))

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

    def _stamp(self, results):
        for res in results:
            res.setdefault('action', self.type)
            res.setdefault('time', time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()))
        return results

    def record(self, results):
        """Write the results so far (after each resource): a run that dies keeps them."""
        self.write_results(self._stamp(list(results)))

    def conclude(self, resources, results, stop=True):
        """Record one result per resource, write them, raise if any failed."""
        self._stamp(results)
        for r, res in zip(resources, results):
            r.setdefault('c7n:action-results', []).append(res)
        self.write_results(results)
        failed = [x for x in results if x['status'] == FAILED]
        if failed and stop:
            raise PolicyExecutionError(
                '%s failed for %d of %d resources: %s' % (
                    self.type, len(failed), len(results),
                    '; '.join(f"{x['resource_id']}: {x['reason']}" for x in failed[:5])))
        return results

    def write_results(self, results):
        output = getattr(self.manager.ctx, 'output', None)
        if output is not None:
            write_atomic(output, f'action-results-{self.type}.json',
                         json.dumps(results, indent=2, default=str))
