"""c7n's schema check of a policy file, each policy against its own resource type only.

c7n checks a file against one schema whose ``policies`` items are an ``anyOf`` of every
resource type in the file. JSON Schema tries each type's definition on each policy, and
for every type that is not the policy's it still checks the policy's filters and actions
against that type's hundreds of filter and action schemas: most of a 17-region
``custodian run``'s start-up, and of the c7n-org parent's check of its ``-u`` file.

A definition accepts a policy only if the policy names one of its ``resource`` values, so
a policy that passes its own type's definition passes the ``anyOf``. ``valid`` answers
True only when every policy passes its own type's definitions and the file passes the
rest of the schema; anything else (an error, a resource no definition names, a schema
shaped otherwise) is left to c7n's own check, which then reports as it always has.
"""

_RESOURCE_REF = '#/definitions/resources/'


def valid(data, schema):
    """True if c7n's check of ``data`` against ``schema`` finds nothing; False: not known."""
    from c7n.schema import JsonSchemaValidator
    try:
        policies_schema = schema['properties']['policies']
        refs = policies_schema['items']['anyOf']
        by_name = _definitions_by_resource(schema, refs)
    except (KeyError, TypeError, IndexError):
        return False
    if not isinstance(data, dict) or not isinstance(data.get('policies'), list) or \
            by_name is None:
        return False
    # the file without its policies' items, then each policy against its own definitions
    outer = dict(schema, properties=dict(schema['properties'],
                                         policies=dict(policies_schema, items={})))
    validator = JsonSchemaValidator(outer)
    if next(validator.iter_errors(data), None) is not None:
        return False
    for policy in data['policies']:
        resource = policy.get('resource') if isinstance(policy, dict) else None
        chosen = by_name.get(resource) if isinstance(resource, str) else None
        if not chosen:
            return False
        for ref in chosen:
            if next(validator.descend(policy, {'$ref': ref}), None) is not None:
                return False
    return True


def _definitions_by_resource(schema, refs):
    """{resource name or alias: [its definitions' refs]}, or None if a ref is not c7n's."""
    resources = schema['definitions']['resources']
    out = {}
    for ref in refs:
        target = ref.get('$ref', '') if isinstance(ref, dict) else ''
        if len(ref) != 1 or not target.startswith(_RESOURCE_REF) or \
                not target.endswith('/policy'):
            return None
        type_name = target[len(_RESOURCE_REF):-len('/policy')]
        names = resources[type_name]['policy']['allOf'][1]['properties']['resource']['enum']
        for name in names:
            out.setdefault(name, []).append(target)
    return out
