"""Check a policy file as ``custodian run`` does, before c7n-org starts its workers.

``custodian run`` and ``custodian validate`` refuse a policy file with a
misspelt filter or action in one line (``invalid policy file: x1.yml error:
user.filters Invalid filter type {'type': 'quarantine-markr'}``). ``c7n-org
run`` does not check the ``-u`` file: each worker fails to load it, logs the
error, and c7n-org exits 0 having run nothing, an empty result that reads as
clean (found here with c7n-org 0.6.52). ``check_policies`` gives c7n-org the
same one line before any worker starts; ``custodian_ext.hooks`` calls it from
c7n-org's ``init``.

It makes the checks of ``c7n.policy.load``: the file's structure, its schema,
then each policy's ``validate()``. Settings are still ``{placeholders}`` here;
the pack's wrappers of ``c7n.schema.validate`` and ``Policy.validate``
(``custodian_ext.hooks``) check a copy with example settings, as they do for
``custodian run``. A leaf module: it imports nothing of the pack but its
error type.
"""
from custodian_ext.errors import PackError


def check_policies(data, path):
    """Raise PackError, in c7n's words and on one line, if ``data`` would not load."""
    from c7n.config import Config
    from c7n.exceptions import PolicyValidationError
    from c7n.policy import PolicyCollection
    from c7n.resources import load_resources
    from c7n.schema import StructureParser
    from c7n.schema import validate as schema_validate

    try:
        structure = StructureParser()
        structure.validate(data)
        types = structure.get_resource_types(data)
        load_resources(types)
        errors = schema_validate(data, resource_types=types)
        if errors:
            error = errors[0]
            where = '/'.join(str(p) for p in getattr(error, 'absolute_path', ()) or ())
            raise PolicyValidationError(
                f"{getattr(error, 'message', None) or error}" + (f" (at {where})" if where else ''))
        for policy in PolicyCollection.from_data(data, Config.empty(region='us-east-1')):
            policy.validate()
    except KeyError as e:  # c7n: KeyError('Invalid resource: nope for provider: aws')
        raise PackError(f"invalid policy file: {path} error: {e.args[0] if e.args else e}") \
            from None
    except PolicyValidationError as e:
        message = ' '.join(str(e).split())
        raise PackError(f"invalid policy file: {path} error: {message}") from None
