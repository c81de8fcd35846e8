"""Patch sets: lists of (owner, attribute, replacement) applied together and
always undone together, in reverse order, whatever happened in between."""

from __future__ import annotations

from typing import Any, Iterable

__all__ = ["PatchSet"]

_MISSING = object()


class PatchSet:
    def __init__(self, patches: Iterable[tuple[Any, str, Any]]) -> None:
        self._patches = list(patches)
        self._saved: list[tuple[Any, str, Any]] = []

    @property
    def applied(self) -> bool:
        return bool(self._saved)

    def apply(self) -> None:
        if self._saved:
            return
        try:
            for owner, name, replacement in self._patches:
                # Look in the owner's own dict so an inherited attribute is
                # restored by deletion, not copied down onto the subclass.
                original = vars(owner).get(name, _MISSING) if isinstance(owner, type) else getattr(owner, name)
                self._saved.append((owner, name, original))
                setattr(owner, name, replacement)
        except Exception:
            self.undo()
            raise

    def undo(self) -> None:
        while self._saved:
            owner, name, original = self._saved.pop()
            if original is _MISSING:
                delattr(owner, name)
            else:
                setattr(owner, name, original)
