"""Where the pack's policy files are: next to the package in a checkout, else ./policies."""
import os

_HERE = os.path.dirname(os.path.abspath(__file__))


def policies_dir(kind=None):
    """``policies/`` (or ``policies/<kind>``) of the checkout this package runs from."""
    for base in (os.path.join(os.path.dirname(_HERE), 'policies'), os.path.abspath('policies')):
        if os.path.isdir(base):
            return os.path.join(base, kind) if kind else base
    raise FileNotFoundError(
        "the pack's policies/ folder was not found; run from the pack's checkout")
