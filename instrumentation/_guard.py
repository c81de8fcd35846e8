"""Our failures never reach the user: capture code runs behind this guard."""

from __future__ import annotations

import logging
from typing import Callable, TypeVar

__all__ = ["guarded"]

_log = logging.getLogger("tracetape.instrumentation")
T = TypeVar("T")


def guarded(fn: Callable[..., T], *args: object, default: T | None = None) -> T | None:
    """Call *fn*; on any exception log it (with traceback at debug) and return *default*."""
    try:
        return fn(*args)
    except Exception as exc:  # noqa: BLE001 - the whole point: the host must not see it
        _log.warning("tracetape capture failed in %s: %r", getattr(fn, "__qualname__", fn), exc)
        _log.debug("tracetape capture failure", exc_info=True)
        return default
