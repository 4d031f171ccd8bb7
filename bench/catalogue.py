"""How fast the activity catalogue classifies CloudTrail records (issue #14).

    .venv/bin/python bench/catalogue.py [-n RECORDS]

Classifies a mix of records (every catalogue entry's calls, wildcard discovery calls and
calls the catalogue does not know, in the proportions of a busy trail: mostly reads) with
``Catalogue.classify`` (indexed by event source and name) and with a linear scan over every
entry in the same run, checks they agree, and prints the throughput and the ratio. The
ratio, not the absolute time, is the figure: both run on the same machine in one process.
"""
import argparse
import os
import random
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from custodian_ext.activity import catalogue  # noqa: E402


def records(cat, n, seed=7):
    rng = random.Random(seed)
    known = [(e.source, name.replace('*', 'Example')) for e in cat for name in e.names]
    reads = [('ec2.amazonaws.com', 'DescribeInstances'), ('iam.amazonaws.com', 'ListRoles'),
             ('s3.amazonaws.com', 'GetObject'), ('kms.amazonaws.com', 'Decrypt'),
             ('sts.amazonaws.com', 'AssumeRole'), ('logs.amazonaws.com', 'PutLogEvents'),
             ('dynamodb.amazonaws.com', 'GetItem'), ('ec2.amazonaws.com', 'CreateTags')]
    out = []
    for _ in range(n):
        source, name = rng.choice(known) if rng.random() < 0.2 else rng.choice(reads)
        out.append({'eventSource': source, 'eventName': name,
                    'requestParameters': {'withDecryption': rng.random() < 0.5,
                                          'attribute': rng.choice(['userData', 'kernel'])},
                    'errorCode': rng.choice([None, None, None, 'AccessDenied'])})
    return out


def linear(cat, record):
    """Every entry in turn, the most specific first: the same answer without the index."""
    best = None
    for entry in cat:
        if entry.source != record.get('eventSource'):
            continue
        names = [n for n in entry.names if n == record.get('eventName') or (
            '*' in n and re.match('^' + '.*'.join(map(re.escape, n.split('*'))) + '$',
                                  record.get('eventName') or ''))]
        if names and entry.matches(record) and (best is None or entry.rank < best.rank):
            best = entry
    return best.classification if best else None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('-n', type=int, default=50000, help='records (default 50000)')
    args = parser.parse_args(argv)
    cat = catalogue.load()
    recs = records(cat, args.n)
    t0 = time.perf_counter()
    fast = [cat.classify(r) for r in recs]
    t1 = time.perf_counter()
    slow = [linear(cat, r) for r in recs[: max(args.n // 10, 1)]]
    t2 = time.perf_counter()
    assert fast[:len(slow)] == slow, 'index and linear scan disagree'
    per_fast = (t1 - t0) / len(recs)
    per_slow = (t2 - t1) / len(slow)
    print(f"catalogue: {len(cat)} entries; {len(recs)} records")
    print(f"indexed classify: {1 / per_fast:,.0f} records/s")
    print(f"linear scan:      {1 / per_slow:,.0f} records/s")
    print(f"indexed / linear time per record: {per_fast / per_slow:.3f}")


if __name__ == '__main__':
    main()
