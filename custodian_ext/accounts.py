"""Checks on a c7n-org accounts file that c7n-org does not make.

c7n-org names each account's output folder after its ``name``: two accounts
with the same name write into one folder, and the second overwrites the
first's results, so one account's findings are reported as the other's (or
lost). Two entries with the same ``account_id`` sweep the account twice,
under two names and possibly two roles, and the report counts its findings
twice. Either is a mistake in the file, refused in one line before any
worker starts (``custodian_ext.hooks.check_accounts_file`` calls
``check_unique``).

A leaf module: it imports nothing of the pack but its error type.
"""
from custodian_ext.errors import PackError


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
