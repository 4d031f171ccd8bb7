"""The pack's error types. A leaf module: it imports nothing of the pack."""


class PackError(Exception):
    """An error whose message is one line a user can act on."""


def count_setting(environ, name, default, most, give):
    """The whole number 1 to ``most`` in ``environ[name]``, ``default`` when unset or blank.
    Anything else stops the run with one line: ``NAME='value': give <give> to <most>``."""
    value = environ.get(name, '').strip()
    if not value:
        return default
    try:
        n = int(value)
    except ValueError:
        n = 0
    if not 1 <= n <= most:
        raise PackError(f"{name}={value!r}: give {give} to {most}")
    return n
