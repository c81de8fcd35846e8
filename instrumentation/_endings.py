"""Model-call endings, run in batches on a worker thread while ``instrument()`` is in force.

Ending a model call (redacting and hashing its payloads, making its GenAI
attributes, ending its span) costs ~30 µs in a warm loop, but 5-7x that at
the end of a real call, after the SDK's parsing and the network have evicted
its code and data from the CPU's caches (measured inside calls: a chat
call's attributes 200 µs, the first ``hashlib.sha256()`` of a call 18-22 µs
against 0.8 µs for the next). In a batch the second ending on finds them
warm. So endings are queued, and a worker runs them every
:data:`INTERVAL_S`, in slices of :data:`SLICE`, letting go of the GIL in
between. Measured (bench/overhead.py, 2 cores): the median added wall time
of a chat call fell from 509 to 279 µs, of a stream from 857 to 398 µs, and
the CPU of all threads per call with it (584 -> 386 and 1029 -> 789 µs). The
price is in the tail: a call that needs the GIL while a slice runs waits for
it, so the 99th percentile of a chat call's added time rose from ~1.5 to
~2.1 ms (a stream's did not rise). A worker woken for every ending was tried
before and cost more than it saved (a wake-up and GIL hand-overs per call).

A span then ends up to :data:`INTERVAL_S` after its call (with its true end
time). Whatever reads ended spans drains the queue first: ``flush()``, the
end of a run (its token totals), ``force_flush()`` of the tracer provider,
``uninstrument()``. Memory stays bounded: with :data:`MAX_PENDING` endings
waiting, the thread that ends a call runs its ending itself. Without
``instrument()`` (instrumentors used on their own) endings run at once.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from typing import Any, Callable

from opentelemetry.instrumentation.utils import suppress_instrumentation

from ._guard import guarded
from ._tasks import start_detached

__all__ = ["end", "drain", "start", "stop", "INTERVAL_S", "MAX_PENDING"]

INTERVAL_S = 0.2
SLICE = 32  # endings run under one hold of the GIL, ~1 ms warm
WAKE_AT = 128  # this many waiting wake the worker before its interval is up
MAX_PENDING = 1024

_pending: deque[tuple[Callable[..., Any], tuple[Any, ...]]] = deque()
_running = threading.RLock()  # held while endings run: drain() returns when none is half done
_wake = threading.Event()
_batching = False
_worker: threading.Thread | None = None


def end(function: Callable[..., Any], *args: Any) -> None:
    """Run ``function(*args)``, an ending that must not raise into the app: now, or in the next batch."""
    if not _batching or len(_pending) >= MAX_PENDING:
        guarded(function, *args)
        return
    _pending.append((function, args))
    if _worker is None:
        _start_worker()
    elif len(_pending) >= WAKE_AT and not _wake.is_set():
        _wake.set()


def drain() -> None:
    """Run every ending queued so far, on this thread; returns when the worker's current slice is done too."""
    while _pending:
        _run_slice(len(_pending))


def start() -> None:
    """Batch endings from now on (``instrument()``)."""
    global _batching
    _batching = True
    if _worker is not None and not _worker.is_alive():
        _start_worker()


def _start_worker() -> None:
    global _worker
    _worker = threading.Thread(target=_work, name="tracetape-endings", daemon=True)
    start_detached(_worker)


def stop() -> None:
    """Run endings at once from now on, and those still queued now (``uninstrument()``)."""
    global _batching
    _batching = False
    _wake.set()
    drain()


def _run_slice(limit: int) -> None:
    with _running:
        for _ in range(limit):
            try:
                function, args = _pending.popleft()
            except IndexError:
                return
            guarded(function, *args)


def _work() -> None:
    with suppress_instrumentation():  # our own work: nothing an ending does (a processor exporting, say) is recorded
        while _batching:
            _wake.wait(INTERVAL_S)
            _wake.clear()
            while _pending:
                _run_slice(SLICE)
                time.sleep(0)  # lets a waiting app thread take the GIL between slices


def _after_fork() -> None:
    """The parent's endings are the parent's to run; the child starts with none and no worker."""
    global _running, _wake, _worker
    _pending.clear()
    _running = threading.RLock()
    _wake = threading.Event()
    _worker = None  # the next ending starts one


os.register_at_fork(after_in_child=_after_fork)
