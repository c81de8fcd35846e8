"""Which files are recorded, and reading them for the record.

Roots are directories whose files are recorded; excluded prefixes win over
roots (a virtualenv inside the project stays out, and so do tracetape's own
packages and data: nothing records itself). Both are absolute,
normalized paths compared as strings: no symlink resolution, which would cost
a system call per component on every open.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import os
import site
import sys
import sysconfig
from dataclasses import dataclass
from typing import Iterable

from tracetape.schemas import config

__all__ = ["FileScope", "Snapshot", "snapshot"]

_open = io.open  # taken before any patch: our own reads are never recorded
_CHUNK = 1024 * 1024


def _prefix(path: str) -> str:
    path = os.path.abspath(path)
    return path if path.endswith(os.sep) else path + os.sep


def _interpreter_dirs() -> list[str]:
    """Where Python and installed packages live: never agent data."""
    dirs = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix]
    dirs += [p for p in sysconfig.get_paths().values() if p]
    try:
        dirs += site.getsitepackages() + [site.getusersitepackages()]
    except AttributeError:  # site-packages helpers are missing in some embedded interpreters
        pass
    return dirs


def _own_dirs() -> list[str]:
    """tracetape's own code and data: its packages (in the project tree under an editable install),
    the data directory (embedded store, spool, collector state) and a store given as a directory."""
    dirs = [config.setting(config.DATA_DIR)]
    store = config.setting(config.STORE)
    if store and "://" not in store:
        dirs.append(store)
    for name in ("tracetape", "tracetape.instrumentation", "tracetape.replay", "tracetape.collector",
                 "tracetape.schemas"):
        spec = importlib.util.find_spec(name)
        dirs += list(spec.submodule_search_locations or []) if spec is not None else []
    return dirs


class FileScope:
    def __init__(self, roots: Iterable[str], max_bytes: int) -> None:
        self.roots = tuple(sorted({_prefix(r) for r in roots}, key=len, reverse=True))
        excluded = _interpreter_dirs() + ["/proc", "/dev", "/sys"] + _own_dirs()
        self.excluded = tuple(sorted({_prefix(p) for p in excluded}))
        self.max_bytes = max_bytes

    def relative(self, path: str) -> str | None:
        """*path* (absolute, normalized) relative to the innermost root holding it; ``None`` if not recorded."""
        candidate = path + os.sep
        if candidate.startswith(self.excluded):
            return None
        for root in self.roots:
            if candidate.startswith(root):
                return path[len(root):] or "."
        return None


@dataclass(frozen=True)
class Snapshot:
    """A file's content at one moment: its bytes if within the cap, else only size and SHA-256."""

    exists: bool
    size: int = 0
    data: bytes | None = None
    sha256: str = ""


def snapshot(path: str, max_bytes: int) -> Snapshot:
    try:
        with _open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size <= max_bytes:
                data = fh.read(max_bytes + 1)
                if len(data) <= max_bytes:  # it may have grown since fstat
                    return Snapshot(True, len(data), data)
                fh.seek(0)
            digest, size = hashlib.sha256(), 0
            for chunk in iter(lambda: fh.read(_CHUNK), b""):
                digest.update(chunk)
                size += len(chunk)
            return Snapshot(True, size, None, digest.hexdigest())
    except FileNotFoundError:
        return Snapshot(False)
    except IsADirectoryError:
        return Snapshot(False)
