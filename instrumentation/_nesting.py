"""Marks "inside a model call" so lower-level patches stay out of it.

A model client (openai, anthropic) records its own HTTP exchange, byte for
byte, as part of the model-call event. An HTTP-level patch (httpx2, httpx,
requests) that saw the same exchange would record it a second time, and
replay would then serve it twice. So the model-call wrappers mark the SDK
call (:func:`enter`/:func:`leave`, or :func:`model_call` as a context
manager), and every lower-level capture point checks
:func:`inside_model_call` first and stands aside while it is true.

The mark is a context variable: it follows the call into the SDK's own
helpers, threads started with context propagation and asyncio tasks, and
never leaks into unrelated concurrent calls.
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import Any, Iterator

__all__ = ["inside_model_call", "model_call", "current", "enter", "leave"]

_current: contextvars.ContextVar[Any] = contextvars.ContextVar("tracetape_model_call", default=None)


def inside_model_call() -> bool:
    """True while a recorded model call is in progress in this context."""
    return _current.get() is not None


def current() -> Any:
    """The state of the model call in progress (owned by the model-client patch), or ``None``."""
    return _current.get()


def enter(state: Any) -> contextvars.Token:
    """Mark the rest of this context as inside a model call; undo with :func:`leave`."""
    return _current.set(state)


def leave(token: contextvars.Token) -> None:
    _current.reset(token)


@contextlib.contextmanager
def model_call(state: Any = True) -> Iterator[None]:
    """``with model_call(): ...`` — everything inside counts as part of one model call."""
    token = _current.set(state)
    try:
        yield
    finally:
        _current.reset(token)
