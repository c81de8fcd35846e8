"""Ends model-call events off the application thread.

When a model call's response (or stream) is complete, what remains is
tracetape's own bookkeeping: redacting and hashing the request and response
payloads, handing them to the uploader, parsing the response into GenAI
attributes, and ending the span. None of it changes what the agent sees, and
it is most of what a recorded call costs, so the calling thread only hands it
to this worker and goes on. Nothing about the event depends on when that
work runs: its sequence number was taken when it started, replay asked for it
before the live call, and its end time is measured on the calling thread.

Bounded: when :data:`QUEUE_LIMIT` endings are waiting, the caller does its own
(the worker fell behind; the app slows down rather than memory growing).
:func:`settle` waits for the queue to empty; the run end, ``flush()`` and
``uninstrument()`` call it, so a run's totals and a flush see every event.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from typing import Callable

from opentelemetry import context as otel_context

from ._guard import guarded
from ._tasks import start_detached

__all__ = ["submit", "settle", "QUEUE_LIMIT"]

QUEUE_LIMIT = 256

_jobs: deque[Callable[[], None]] = deque()
_lock = threading.Condition()
_busy = 0  # jobs taken by the worker and not done
_worker: threading.Thread | None = None


def submit(job: Callable[[], None]) -> None:
    """Run *job* (which never raises: callers guard it) on the worker, or here when the queue is full."""
    global _worker
    with _lock:
        if len(_jobs) < QUEUE_LIMIT:
            _jobs.append(job)
            if _worker is None or not _worker.is_alive():
                _worker = threading.Thread(target=_work, name="tracetape-finisher", daemon=True)
                start_detached(_worker)
            _lock.notify_all()  # the worker, not only a settle() waiting on the same condition
            return
    job()


def settle(timeout: float = 10.0) -> bool:
    """Wait until every ending submitted so far is done; ``False`` at the timeout."""
    deadline = time.monotonic() + timeout
    with _lock:
        while _jobs or _busy:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or _worker is None or not _worker.is_alive():
                return not (_jobs or _busy)
            _lock.wait(remaining)
    return True


def _work() -> None:
    global _busy
    # The worker's own I/O (none today) and any call it makes are ours: never recorded.
    otel_context.attach(otel_context.set_value(otel_context._SUPPRESS_INSTRUMENTATION_KEY, True))
    while True:
        with _lock:
            while not _jobs:
                _lock.wait()
            job = _jobs.popleft()
            _busy += 1
        guarded(job)
        with _lock:
            _busy -= 1
            if not _jobs and not _busy:
                _lock.notify_all()


def _after_fork_in_child() -> None:
    # The parent's pending endings are the parent's to do, its worker is not in this process, and
    # the lock may have been held by it at the fork.
    global _lock, _worker, _busy
    _lock = threading.Condition()
    _jobs.clear()
    _worker, _busy = None, 0


os.register_at_fork(after_in_child=_after_fork_in_child)
