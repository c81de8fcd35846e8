"""Ends model-call events off the application thread, while the application waits on the network.

When a model call's response (or stream) is complete, what remains is
tracetape's own bookkeeping: redacting and hashing the request and response
payloads, handing them to the uploader, parsing the response into GenAI
attributes, and ending the span. None of it changes what the agent sees, and
it is most of what a recorded call costs, so the calling thread only hands it
to this worker and goes on. Nothing about the event depends on when that
work runs: its sequence number was taken when it started, replay asked for it
before the live call, and its end time is measured on the calling thread.

When the worker runs matters, because of the GIL. A worker woken at once
takes the GIL at the application's first release of it (an ``os.urandom``, a
socket poll), so its work lands on the application anyway, in the middle of
whatever it does next. So the worker waits for a better moment: the next time
the application blocks on a model provider's answer (:func:`waiting`, called
through httpcore's ``trace`` hook once an OpenAI request was sent and its
response is awaited). That time is idle for the application; the endings run
in it. Endings that see no such moment within :data:`LINGER_S` (an agent
that makes no further OpenAI call, or calls anthropic, whose patch point has
no hook between sending and receiving) run then.

Bounded: when :data:`QUEUE_LIMIT` endings are waiting, the caller does its own
(the worker fell behind; the app slows down rather than memory growing).
:func:`settle` runs the queue at once and waits for it to empty; the run end,
``flush()`` and ``uninstrument()`` call it, so a run's totals and a flush see
every event.
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

__all__ = ["submit", "settle", "waiting", "QUEUE_LIMIT", "LINGER_S"]

QUEUE_LIMIT = 256
LINGER_S = 0.05  # the longest an ending waits for the application to wait on the network

_jobs: deque[Callable[[], None]] = deque()
_lock = threading.Condition()
_busy = 0  # jobs taken by the worker and not done
_go = False  # the application waits on the network now (or a settle() waits): run the jobs
_sleeping = False  # the worker waits for a job with no timeout: a new job must wake it
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
            elif _sleeping:
                _lock.notify_all()  # it starts lingering for the next network wait
            return
    job()


def waiting() -> None:
    """The application is about to block on the network: endings waiting for that moment may run now.

    On the application's hot path: with nothing pending it costs one truth test.
    """
    global _go
    if _jobs:
        with _lock:
            _go = True
            _lock.notify_all()


def settle(timeout: float = 10.0) -> bool:
    """Run every ending submitted so far and wait until they are done; ``False`` at the timeout."""
    global _go
    deadline = time.monotonic() + timeout
    with _lock:
        while _jobs or _busy:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or _worker is None or not _worker.is_alive():
                return not (_jobs or _busy)
            if _jobs:
                _go = True
                _lock.notify_all()
            _lock.wait(remaining)
    return True


def _next_jobs() -> list[Callable[[], None]]:
    """Wait (under the lock) for jobs and for a moment to run them; take them all."""
    global _go, _sleeping, _busy
    if not _jobs:
        # A job that comes within LINGER_S finds the worker awake: submitting it costs no wake-up.
        _lock.wait(LINGER_S)
        while not _jobs:
            _sleeping = True
            _lock.wait()
        _sleeping = False
    if not _go:
        _lock.wait(LINGER_S)
    _go = False
    jobs = list(_jobs)
    _jobs.clear()
    _busy += len(jobs)
    return jobs


def _work() -> None:
    global _busy
    # The worker's own I/O (none today) and any call it makes are ours: never recorded.
    otel_context.attach(otel_context.set_value(otel_context._SUPPRESS_INSTRUMENTATION_KEY, True))
    while True:
        with _lock:
            jobs = _next_jobs()
        for job in jobs:
            guarded(job)
        with _lock:
            _busy -= len(jobs)
            if not _jobs and not _busy:
                _lock.notify_all()


def _after_fork_in_child() -> None:
    # The parent's pending endings are the parent's to do, its worker is not in this process, and
    # the lock may have been held by it at the fork.
    global _lock, _worker, _busy, _go, _sleeping
    _lock = threading.Condition()
    _jobs.clear()
    _worker, _busy, _go, _sleeping = None, 0, False, False


os.register_at_fork(after_in_child=_after_fork_in_child)
