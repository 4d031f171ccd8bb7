"""``make demo``: the pack against a compromised account on the local emulator."""
