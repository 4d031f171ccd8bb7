"""Checks of c7n-org's inputs for runs of the pack's policies: the accounts file, the
``-u`` policy file and its ``-p`` / ``-l`` selection, and every account's settings.

A leaf module: it raises PackError / SettingsError with one line and patches nothing.
"""
import difflib
import os
import re

import custodian_ext.settings as settings
from custodian_ext.errors import PackError

ACCOUNTS_HINT = ('generate it from AWS Organizations with `c7n-org aws-accounts -f accounts.yml` '
                 '(README: Run modes)')
BUNDLE_HINT = '`custodian-ext bundle policies/detect -o build/detect.yml`'


def read_yaml(path, what, hint):
    import yaml
    # c7n's loader: libyaml's when PyYAML has it (a bundled policy file parses in 14 ms
    # rather than 140 ms, and c7n-org's start reads it three times)
    from c7n.utils import yaml_load
    if os.path.isdir(path):
        raise PackError(f"{what} {path} is a folder; {hint}")
    if not os.path.isfile(path):
        raise PackError(f"{what} {path} not found; {hint}")
    try:
        with open(path) as fh:
            return yaml_load(fh)
    except yaml.YAMLError as e:
        raise PackError(settings.yaml_error(path, e)) from None


def check_accounts(accounts_config, custodian_config, source, cli_regions=()):
    """Check every account's vars and region list; raise SettingsError or PackError."""
    names = set()
    for p in custodian_config.get('policies', ()):
        names |= settings.referenced(p)
    if not names:
        return
    for a in accounts_config.get('accounts', ()):
        label = a.get('name', a.get('account_id'))
        a['vars'] = settings.validate(
            a.get('vars') or {}, source=f"{source}: account {label} vars", names=names)
        regions = list(cli_regions or a.get('regions') or ())
        if 'global_region' in names and regions and 'all' not in regions:
            if a['vars']['global_region'] not in regions:
                raise PackError(
                    f"{source}: account {label} is swept in {', '.join(regions)} but its "
                    f"global services are checked in global_region "
                    f"{a['vars']['global_region']}; add that region (-r) or change "
                    f"global_region")


def check_unique(data, path='accounts file'):
    """Raise PackError if two accounts share an ``account_id`` or a ``name``.

    ``data`` is the parsed accounts file (``{'accounts': [...]}``); entries that
    are not mappings, or lack the key, are left to the other checks.
    """
    accounts = data.get('accounts') if isinstance(data, dict) else None
    for key, what in (('account_id', 'account id'), ('name', 'name')):
        seen = {}
        for i, a in enumerate(accounts or ()):
            if not isinstance(a, dict) or a.get(key) in (None, ''):
                continue
            value = str(a[key])
            if value in seen:
                first = seen[value]
                other = 'name' if key == 'account_id' else 'account_id'
                labels = ' and '.join(
                    f"#{n + 1}" + (f" ({accounts[n].get(other)})" if accounts[n].get(other) else '')
                    for n in (first, i))
                raise PackError(
                    f"{path}: accounts {labels} have the same {what} {value!r}; each account "
                    f"must appear once, with its own name (the name is its output folder)")
            seen[value] = i


def check_regions(data, config, cli_regions=()):
    """Every region name on c7n-org's command line and in the accounts file is a real one.

    c7n drops a region it does not know and runs nothing there, so a typo would read as
    clean (``custodian_ext.regions``).
    """
    from custodian_ext.regions import check_names
    check_names([r for r in cli_regions or () if r != 'all'])
    for a in (data.get('accounts') or ()) if isinstance(data, dict) else ():
        if isinstance(a, dict) and isinstance(a.get('regions'), list):
            check_names([r for r in a['regions'] if isinstance(r, str) and r != 'all'],
                        source=f"{config}: account {a.get('name') or a.get('account_id')} region")


def check_accounts_file(path):
    """The accounts file c7n-org is given: present, and every AWS account reachable."""
    data = read_yaml(path, 'accounts file', ACCOUNTS_HINT)
    if not isinstance(data, dict) or not any(
            k in data for k in ('accounts', 'subscriptions', 'projects', 'tenancies')):
        raise PackError(f"{path}: no 'accounts:' list; {ACCOUNTS_HINT}")
    for i, a in enumerate(data.get('accounts') or ()):
        if not isinstance(a, dict):
            raise PackError(f"{path}: accounts entry #{i + 1} is not a mapping")
        account_id = a.get('account_id')
        label = a.get('name') or account_id or f"#{i + 1}"
        if not isinstance(account_id, str) or not re.match(r'^\d{12}$', account_id):
            raise PackError(
                f"{path}: account {label}: account_id {account_id!r} must be a 12-digit id "
                f"in quotes, like '123456789012'")
        if not a.get('name'):
            raise PackError(f"{path}: account {account_id} has no name; add name: <short name> "
                            f"(it names the account's output folder)")
        if not a.get('role') and not a.get('profile'):
            raise PackError(
                f"{path}: account {label} ({account_id}) has no role; add "
                f"role: arn:aws:iam::{account_id}:role/OrganizationAccountAccessRole "
                f"(or the role c7n-org should assume there), or a profile")
    # Two entries with one name write into one output folder (the second overwrites the
    # first); one account id twice is swept, and counted, twice.
    check_unique(data, path)
    return data


def read_policy_file(path):
    """The ``-u`` file's policies (mappings)."""
    data = read_yaml(path, 'policy file', f"c7n-org -u takes one file; build it with {BUNDLE_HINT}")
    if not isinstance(data, dict) or not isinstance(data.get('policies'), list):
        raise PackError(f"{path}: not a policy file (no top-level 'policies:' list)")
    return [p for p in data['policies'] if isinstance(p, dict)]


def check_policy_selection(path, policies=(), policy_tags=()):
    """The -u file exists and every -p name and -l tag selects something."""
    from c7n_org.cli import comma_expand
    items = read_policy_file(path)
    known_tags = sorted({t for p in items for t in (p.get('tags') or ())})
    for tag in comma_expand(policy_tags):
        if tag not in known_tags:
            close = difflib.get_close_matches(tag, known_tags, n=1, cutoff=0.6)
            hint = f"did you mean '{close[0]}'?" if close else (
                'tags in use: ' + ', '.join(known_tags[:40]))
            raise PackError(f"-l {tag}: no policy in {path} has this tag; {hint}")
    names = [p.get('name') for p in items]
    for name in comma_expand(policies):
        if name not in names:
            close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
            hint = f"; did you mean '{close[0]}'?" if close else ''
            raise PackError(f"-p {name}: no policy of that name in {path}{hint}")
    tags = comma_expand(policy_tags)
    if tags and not any(set(tags) <= set(p.get('tags') or ()) for p in items):
        raise PackError(f"-l {' -l '.join(tags)}: no policy in {path} has all of these tags "
                        f"(c7n-org selects policies carrying every -l tag)")
