"""Shards of a c7n-org sweep: which accounts each batch job runs. A leaf module.

An organization too large for one machine's sweep window is swept by N jobs of an
existing batch engine (an AWS Batch array job, a Kubernetes Indexed Job: see
examples/batch/), each running c7n-org over its share of the accounts and all
writing to one S3 output. Each job picks its share itself, from the same full
accounts file, with ``custodian-ext shard --index I --count N``:

- the accounts are those c7n-org would select with the same ``-t`` tags, and,
  with ``--ou``, those under an Organizations OU path (``c7n-org aws-accounts``
  tags each account ``path:/OU/...`` with every OU above it);
- they are ordered by account id and dealt out in turn: account k goes to shard
  ``k mod N``. Every shard of one sweep reads the same file, so the shards are
  disjoint and together hold every selected account, and sizes differ by at
  most one. (Adding accounts to the file moves later accounts to other shards
  in the next sweep; within a sweep the assignment is fixed.)

``custodian-ext org-check`` and ``custodian-ext report`` take the full accounts
file (and ``--shards N``) to say which accounts, and which whole shards, never
reported.
"""
import os

from custodian_ext.errors import PackError

# Where the batch engines put a job's index: AWS Batch array jobs, Kubernetes Indexed Jobs.
INDEX_ENV = ('AWS_BATCH_JOB_ARRAY_INDEX', 'JOB_COMPLETION_INDEX')


def ou_tags(ous):
    """c7n-org's path tags for OU paths ('/Prod/Web' -> 'path:/Prod/Web'); '/' selects all."""
    out = []
    for ou in ous or ():
        path = '/' + str(ou).strip().strip('/')
        if path != '/':
            out.append('path:' + path)
    return out


def select(accounts, tags=(), ous=()):
    """The accounts carrying every tag in ``tags`` (as c7n-org's -t) and under any of ``ous``."""
    wanted = [t for t in tags or () if t]
    under = ou_tags(ous)
    out = []
    for a in accounts:
        have = set(a.get('tags') or ())
        if not all(t in have for t in wanted):
            continue
        if under and not any(t in have for t in under):
            continue
        out.append(a)
    return out


def ordered(accounts):
    return sorted(accounts, key=lambda a: (str(a.get('account_id') or ''), str(a.get('name'))))


def check_count(index, count):
    if count is None or count < 1:
        raise PackError(f"--count must be at least 1 (got {count})")
    if index is None or not 0 <= index < count:
        raise PackError(f"--index must be between 0 and {count - 1} for --count {count} "
                        f"(got {index})")


def shard(accounts, index, count):
    """Shard ``index`` of ``count``: every count-th account, by account id, from ``index``."""
    check_count(index, count)
    return [a for k, a in enumerate(ordered(accounts)) if k % count == index]


def assignment(accounts, count):
    """{account name: shard index} for every account."""
    check_count(0, count)
    return {a.get('name'): k % count for k, a in enumerate(ordered(accounts))}


def index_from_env(environ=None):
    """The job's index as the batch engine gives it, or None."""
    environ = os.environ if environ is None else environ
    for name in INDEX_ENV:
        value = environ.get(name)
        if value not in (None, ''):
            try:
                return int(value)
            except ValueError:
                raise PackError(f"{name}={value!r} is not a job index") from None
    return None


def write(config_path, output, index, count, tags=(), ous=()):
    """Write shard ``index`` of ``count`` of ``config_path`` to ``output``; its accounts."""
    import yaml
    from custodian_ext.accounts_file import check_accounts_file
    data = check_accounts_file(config_path)
    selected = select(data.get('accounts') or (), tags, ous)
    if not selected:
        raise PackError(f"{config_path}: no account matches "
                        + (', '.join(list(tags or ()) + ou_tags(ous)) or 'the file'))
    mine = shard(selected, index, count)
    data = dict(data, accounts=mine)
    text = yaml.safe_dump(data, sort_keys=False)
    if output == '-':
        return mine, text
    folder = os.path.dirname(os.path.abspath(output))
    os.makedirs(folder, exist_ok=True)
    with open(output, 'w') as fh:
        fh.write(text)
    return mine, None
