"""One policy file from a policy folder, for c7n-org's ``-u`` (which takes a single file).

A small internal helper for the demo. ``custodian-ext bundle`` (run modes)
does the same for users; once both are on one branch, ``write_bundle`` here
can be replaced by it.
"""
import os

import yaml

from custodian_ext.errors import PackError
from custodian_ext.policyfiles import policy_files


def write_bundle(folder, path):
    """Write every policy of ``folder``'s *.yml into ``path``; returns the policy names."""
    policies, seen = [], {}
    for source in policy_files([folder]):
        with open(source) as fh:
            data = yaml.safe_load(fh) or {}
        for p in data.get('policies') or ():
            if p['name'] in seen:
                raise PackError(f"policy {p['name']} is in both {seen[p['name']]} and {source}")
            seen[p['name']] = source
            policies.append(p)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, 'w') as fh:
        yaml.safe_dump({'policies': policies}, fh, sort_keys=False)
    return [p['name'] for p in policies]
