"""A finding the pack could check only in part: ``c7n:incomplete`` on the resource.

A filter that could not read part of what it needs and still reports the
resource (a trail's bucket it could not read, a bucket whose versions it could
not list) adds one line per gap: what could not be read, and the error AWS
gave, which for a denial names the IAM action. The report lists such a run
among its problems, with those lines, and its gate exits 2 as for an errored
run: an incomplete check is never read as complete, nor as clean. A leaf
module: it imports nothing.
"""
KEY = 'c7n:incomplete'


def mark(resource, reason):
    """Record on ``resource`` that ``reason`` (one line) could not be checked."""
    gaps = resource.setdefault(KEY, [])
    if reason not in gaps:
        gaps.append(reason)
    return resource


def reasons(resources):
    """Every gap recorded on ``resources``, in order, without repeats."""
    out = []
    for r in resources or ():
        for reason in (r.get(KEY) or ()) if isinstance(r, dict) else ():
            if reason not in out:
                out.append(str(reason))
    return out
