"""The run an event belongs to, and its per-run sequence.

A run is found through a context variable (so asyncio tasks inherit it) and,
for threads that were started without copying the context, through the
process-wide stack of open runs. The sequence number is taken when an event
STARTS, under a lock, so it is unique and strictly increasing across every
thread and task of the process, and consistent with start order.

A run can also span processes. The process that opened it owns it; when its
work reaches another process (see ``_links``), :meth:`Run.share` moves the
run's totals into a small shared file (``_counter``), and the other process
joins the run with :meth:`Run.joined`, drawing sequence numbers from the same
counter. A run that never leaves its process never pays for that.
"""

from __future__ import annotations

import contextvars
import logging
import os
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field

from ._counter import LocalTotals, SharedTotals, Totals, UnsequencedTotals, after_fork_in_child

__all__ = ["Run", "current_run", "open_runs", "activate", "deactivate", "use", "unuse"]

_log = logging.getLogger(__name__)
_JOINED_LIMIT = 64


@dataclass(eq=False)
class Run:
    run_id: str
    agent: str
    tags: tuple[str, ...] = ()
    parent_run_id: str = ""
    fork_step: int = 0
    _totals: Totals = field(default_factory=LocalTotals, repr=False)

    @staticmethod
    def new_id() -> str:
        return uuid.uuid4().hex

    def next_seq(self) -> int:
        return self._totals.next_seq()

    @property
    def event_count(self) -> int:
        return self._totals.snapshot()[0]

    @property
    def input_tokens(self) -> int:
        return self._totals.snapshot()[1]

    @property
    def output_tokens(self) -> int:
        return self._totals.snapshot()[2]

    @property
    def errors(self) -> int:
        return self._totals.snapshot()[3]

    def add_usage(self, input_tokens: int, output_tokens: int, error: bool) -> None:
        self._totals.add(input_tokens, output_tokens, int(error))

    def share(self) -> str:
        """Path of the run's shared sequence file, creating it on first use; ``""`` if unshareable.

        Called before work of this run starts in another process: from then
        on every process of the run (this one included) counts in that file.
        """
        totals = self._totals
        if isinstance(totals, LocalTotals):
            totals = self._totals = totals.move_to_shared(self.run_id)
        return totals.path if isinstance(totals, SharedTotals) else ""

    @classmethod
    def joined(cls, run_id: str, seq_file: str) -> "Run":
        """The run *run_id*, owned by another process, counting in *seq_file*.

        One object per (run, file) in this process, so the requests an MCP
        server handles for one run share it. When the file cannot be opened
        (a server on another host), events still carry the run id, with seq 0.
        """
        key = (run_id, seq_file)
        with _open_lock:
            found = _joined.get(key)
            if found is not None:
                _joined.move_to_end(key)
                return found
        totals: Totals
        try:
            totals = SharedTotals.open(seq_file) if seq_file else UnsequencedTotals()
        except OSError as exc:
            _log.info("tracetape: run %s joined without sequence numbers (%s)", run_id, exc)
            totals = UnsequencedTotals()
        run = cls(run_id, "", _totals=totals)
        with _open_lock:
            run = _joined.setdefault(key, run)
            while len(_joined) > _JOINED_LIMIT:
                _joined.popitem(last=False)
        return run

    def _close(self) -> None:
        """The run is over: no new process may join it (those that did keep counting)."""
        totals = self._totals
        if isinstance(totals, SharedTotals) and totals.owner:
            totals.unlink()


_current: contextvars.ContextVar[Run | None] = contextvars.ContextVar("tracetape_run", default=None)
_open_runs: list[Run] = []
_open_lock = threading.Lock()
_joined: "OrderedDict[tuple[str, str], Run]" = OrderedDict()


def open_runs() -> list[Run]:
    """The process's open runs, innermost last: the same list object for the life of the process, so
    the hot path can bind it once and test its truth value per call."""
    return _open_runs


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
    run._close()
    try:
        _current.reset(token)
    except ValueError:
        # The run was left in another context than it was entered in (a
        # generator closed elsewhere); the stack above is what matters then.
        _current.set(None)


def use(run: Run) -> contextvars.Token[Run | None]:
    """Make *run* current in this context only (one request of a server), not process-wide."""
    return _current.set(run)


def unuse(token: contextvars.Token[Run | None]) -> None:
    try:
        _current.reset(token)
    except ValueError:
        _current.set(None)


def _before_fork() -> None:
    # A forked child inherits the open runs and would count on from the same
    # numbers: share them first, so parent and child draw from one counter.
    with _open_lock:
        runs = list(_open_runs)
    for run in runs:
        try:
            run.share()
        except OSError as exc:
            _log.warning("tracetape: cannot share run %s with a forked child: %r", run.run_id, exc)


def _after_fork_in_child() -> None:
    global _open_lock
    _open_lock = threading.Lock()
    after_fork_in_child()


os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)
