"""Policy files: folders expanded, the settings they use, and whether a policy is the pack's.

A leaf module: it reads files and imports nothing that patches c7n.
"""
import os

import custodian_ext.settings as settings
from custodian_ext.errors import PackError

# Policies of the pack carry a runbook step (docs/DEVELOPING.md); the pack's own
# resource type and settings mark the rest.
PACK_RESOURCES = ('aws.account-region', 'account-region')


def policy_files(configs):
    """Policy files named on the command line, with folders expanded."""
    out = []
    for c in configs:
        if os.path.isdir(c):
            found = sorted(
                os.path.join(c, f) for f in os.listdir(c)
                if f.endswith(('.yml', '.yaml')) and f not in ('vars.yml', 'vars.yaml'))
            if not found:
                raise PackError(f"{c}: the folder holds no policy files (*.yml)")
            out.extend(found)
        else:
            out.append(c)
    return out


def read_policies(configs):
    """The policies (mappings) in the given files and folders, read as plain YAML.

    Unreadable files are left out: c7n reports them itself, in its own words.
    """
    import yaml
    from c7n.utils import yaml_load
    found = []
    for path in policy_files(configs):
        try:
            with open(path) as fh:
                data = yaml_load(fh)
        except (OSError, yaml.YAMLError):
            continue
        if isinstance(data, dict) and isinstance(data.get('policies'), list):
            found.extend(p for p in data['policies'] if isinstance(p, dict))
    return found


def settings_in_files(configs):
    """Pack settings that the policy files refer to."""
    names = set()
    for p in read_policies(configs):
        names |= settings.referenced(p)
    return names


def is_pack_policy(data):
    """True for a policy of the pack: it names a runbook step, a pack setting or resource.

    The pack's checks (preflight, accounts file, policy selection, skip
    records) apply to runs of such policies only, so that stock Custodian
    behaves exactly as before for everyone else's policies.
    """
    if not isinstance(data, dict):
        return False
    metadata = data.get('metadata')
    if isinstance(metadata, dict) and metadata.get('runbook'):
        return True
    return data.get('resource') in PACK_RESOURCES or bool(settings.referenced(data))


def any_pack_policy(policies):
    return any(is_pack_policy(p) for p in policies)


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
