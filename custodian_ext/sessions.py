"""One botocore data loader per process, shared by every session.

c7n makes a new boto3 session for every account-region (c7n-org) and every
assumed role, and each new botocore session parses the JSON service models
(EC2's alone is several MB) and endpoints again: measured here, about two
thirds of c7n-org's CPU per account-region in a ``-r all`` sweep. The
loader only reads botocore's data files and caches what it parsed, the same
objects one session already hands to all of its clients, so sharing one
loader between sessions changes nothing but the time.

Installed by the pack's hooks in the ``custodian`` and ``c7n-org`` programs.
"""
import threading

_lock = threading.Lock()
_loaders = {}
_INSTALLED = False


class _SearchPaths(list):
    # boto3.Session appends its own data folder to the loader's search
    # paths each time a session is made; with one loader, once is enough.
    def append(self, path):
        if path not in self:
            super().append(path)


def share_loader():
    global _INSTALLED
    if _INSTALLED:
        return
    _INSTALLED = True
    import botocore.session
    from botocore.loaders import create_loader

    def shared_loader(search_path_string=None):
        with _lock:
            loader = _loaders.get(search_path_string)
            if loader is None:
                loader = create_loader(search_path_string)
                loader._search_paths = _SearchPaths(loader._search_paths)
                _loaders[search_path_string] = loader
            return loader

    botocore.session.create_loader = shared_loader
