"""YAML files read with libyaml's parser where PyYAML has it, as c7n reads policy files.

A ``custodian run`` of the pack reads its policy files several times before the first
policy runs (the settings they use, the pack's Lambda policies, c7n's own load) and its
data files once: with PyYAML's pure-Python parser that was 1.3 s of start-up, ten times
what libyaml takes. The same safe subset of YAML either way.
"""
import yaml

Loader = getattr(yaml, 'CSafeLoader', yaml.SafeLoader)


def safe_load(stream):
    """``yaml.safe_load``, with libyaml's parser when it is there."""
    return yaml.load(stream, Loader=Loader)  # noqa: S506 - a safe loader
