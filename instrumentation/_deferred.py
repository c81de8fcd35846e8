"""Patches applied when their module is imported, not before.

``instrument()`` runs in every recorded process, but most processes use
only a few of the libraries we can patch, and importing one just to patch
it can cost seconds (``mcp`` takes longer to import than everything else
together). So a patch waits for the application to import its module: a
post-import hook applies it then, or at once if the module is already
loaded. Undoing is immediate; a hook that fires after ``undo()`` does
nothing.
"""

from __future__ import annotations

import sys
import threading
from typing import Any, Callable, Iterable

import wrapt

from ._guard import guarded
from ._patches import PatchSet

__all__ = ["DeferredPatches"]


class DeferredPatches:
    """For each ``(module name, make patches)`` pair: a :class:`PatchSet` made and applied on import."""

    def __init__(self, targets: Iterable[tuple[str, Callable[[Any], list[tuple[Any, str, Any]]]]]) -> None:
        self._targets = list(targets)
        self._lock = threading.Lock()
        self._wanted = False
        self._applied: dict[str, PatchSet] = {}
        self._hooked: set[str] = set()

    def apply(self) -> None:
        with self._lock:
            self._wanted = True
            hooks = [(name, make) for name, make in self._targets if name not in self._hooked]
            self._hooked.update(name for name, _ in hooks)
        for name, make in hooks:
            wrapt.register_post_import_hook(self._hook(name, make), name)
        # A hook fires once: after undo() and a new apply(), patch the modules already loaded here.
        fresh = {name for name, _ in hooks}
        for name, make in self._targets:
            if name not in fresh:
                self._on_import(name, make, None)

    def _hook(self, name: str, make: Callable[[Any], list[tuple[Any, str, Any]]]) -> Callable[[Any], None]:
        def hook(module: Any) -> None:
            self._on_import(name, make, module)

        return hook

    def _on_import(self, name: str, make: Callable[[Any], list[tuple[Any, str, Any]]], module: Any) -> None:
        module = module if module is not None else sys.modules.get(name)
        if module is None:
            return
        with self._lock:
            if not self._wanted or name in self._applied:
                return
            patches = guarded(make, module)
            if patches is None:
                return
            patch_set = PatchSet(patches)
            if guarded(patch_set.apply) is None and not patch_set.applied:
                return
            self._applied[name] = patch_set

    def undo(self) -> None:
        with self._lock:
            self._wanted = False
            applied, self._applied = self._applied, {}
        for patch_set in reversed(list(applied.values())):
            patch_set.undo()
