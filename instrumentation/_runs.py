"""The run an event belongs to, and its per-run sequence.

A run is found through a context variable (so asyncio tasks inherit it) and,
for threads that were started without copying the context, through the
process-wide stack of open runs. The sequence number is taken when an event
STARTS, under a lock, so it is unique and strictly increasing across every
thread and task of the process, and consistent with start order.
"""

from __future__ import annotations

import contextvars
import threading
import uuid
from dataclasses import dataclass, field

__all__ = ["Run", "current_run", "activate", "deactivate"]


@dataclass(eq=False)
class Run:
    run_id: str
    agent: str
    tags: tuple[str, ...] = ()
    parent_run_id: str = ""
    fork_step: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _last_seq: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0

    @staticmethod
    def new_id() -> str:
        return uuid.uuid4().hex

    def next_seq(self) -> int:
        with self._lock:
            self._last_seq += 1
            return self._last_seq

    @property
    def event_count(self) -> int:
        return self._last_seq

    def add_usage(self, input_tokens: int, output_tokens: int, error: bool) -> None:
        with self._lock:
            self.input_tokens += input_tokens
            self.output_tokens += output_tokens
            self.errors += int(error)


_current: contextvars.ContextVar[Run | None] = contextvars.ContextVar("tracetape_run", default=None)
_open_runs: list[Run] = []
_open_lock = threading.Lock()


def current_run() -> Run | None:
    """The run of this task or thread; else the innermost run open in the process."""
    run = _current.get()
    if run is not None:
        return run
    with _open_lock:
        return _open_runs[-1] if _open_runs else None


def activate(run: Run) -> contextvars.Token[Run | None]:
    with _open_lock:
        _open_runs.append(run)
    return _current.set(run)


def deactivate(run: Run, token: contextvars.Token[Run | None]) -> None:
    with _open_lock:
        if run in _open_runs:
            _open_runs.remove(run)
    try:
        _current.reset(token)
    except ValueError:
        # The run was left in another context than it was entered in (a
        # generator closed elsewhere); the stack above is what matters then.
        _current.set(None)
