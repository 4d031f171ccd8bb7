"""Register one filter or action class on many resource types.

c7n loads resource modules on demand, so a resource type may not exist yet
when the pack is imported. Like ``c7n/filters/costhub.py``, the pack
subscribes to the AWS resource registry and registers as each type loads,
and registers at once on the types already loaded.
"""
from c7n.resources.aws import AWS

# Filters that read CloudTrail event history, paced at 2 requests/s per account-region
# (class attribute ``paced``, a rank: the longer its chain of paced reads, the higher):
# the longest part of a sweep, started first, highest rank first (custodian_ext.concurrency).
PACED_FILTERS = {}


def _registry(resource_class, kind):
    return resource_class.filter_registry if kind == 'filter' else resource_class.action_registry


def register(kind, name, klass, resource_types):
    """Register ``klass`` as filter or action ``name`` on each type in ``resource_types``.

    ``resource_types`` are c7n type names without the provider prefix, such
    as ``ec2`` or ``iam-user``.
    """
    assert kind in ('filter', 'action'), kind
    wanted = {t.split('.', 1)[-1] for t in resource_types}

    def on_load(registry, resource_class):
        if getattr(resource_class, 'type', None) in wanted:
            _registry(resource_class, kind).register(name, klass)

    for rtype in wanted:
        rclass = AWS.resources.get(rtype)
        if rclass is not None:
            _registry(rclass, kind).register(name, klass)
    AWS.resources.subscribe(on_load)
    klass.resource_types = tuple(sorted(wanted))
    if kind == 'filter' and getattr(klass, 'paced', 0):
        PACED_FILTERS[name] = int(klass.paced)
    return klass


def register_filter(name, resource_types):
    """Class decorator: ``@register_filter('quarantine-marker', ['iam-user'])``."""
    def decorate(klass):
        return register('filter', name, klass, resource_types)
    return decorate


def register_action(name, resource_types):
    def decorate(klass):
        return register('action', name, klass, resource_types)
    return decorate
