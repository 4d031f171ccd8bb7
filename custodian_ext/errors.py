"""The pack's error types. A leaf module: it imports nothing of the pack."""


class PackError(Exception):
    """An error whose message is one line a user can act on."""
