"""Carrying a run across a process boundary.

When work of a run continues in another process — a child process, a
multiprocessing worker, an MCP server handling a request — the calling side
hands over a :class:`RunLink`: the run id, the path of the run's shared
sequence file, the task path the remote work is numbered under, and the W3C
``traceparent`` of the span that started it. The other side joins the run
with it, so its events land in the same run, in the same sequence, under the
right parent span.

The link travels as environment variables to child processes (the names are
the settings below; ``TRACEPARENT`` is the OpenTelemetry environment carrier)
and in ``params._meta`` of MCP requests.

The remote work's task path is a child of the caller's current task, taken
in program order like a thread's, so it is the same on every run of the same
code, and replay lines up with recording.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Iterator, Mapping

from opentelemetry import context as otel_context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from tracetape.schemas import config
from tracetape.schemas.config import SEQ_FILE, TASK, TRACEPARENT

from . import _tasks
from ._runs import Run, activate, current_run, deactivate, unuse, use

__all__ = ["RunLink", "ProcessMembership", "child_link", "joined", "SEQ_FILE", "TASK", "TRACEPARENT"]

_propagator = TraceContextTextMapPropagator()
# MCP _meta keys (a custom prefix, as the MCP spec asks of non-protocol keys).
_META_RUN, _META_SEQ_FILE, _META_TASK = "tracetape/run", "tracetape/seq_file", "tracetape/task"


@dataclass(frozen=True)
class RunLink:
    """What another process needs to add events to a run."""

    run_id: str
    seq_file: str = ""
    task: str = ""
    traceparent: str = ""

    def to_env(self) -> dict[str, str]:
        # Every variable is set, empty or not, so nothing stale from our own environment leaks through.
        return {config.RUN_ID.env: self.run_id, SEQ_FILE.env: self.seq_file, TASK.env: self.task,
                TRACEPARENT.env: self.traceparent}

    @classmethod
    def from_env(cls) -> "RunLink | None":
        run_id = config.setting(config.RUN_ID)
        if not run_id:
            return None
        return cls(run_id, config.setting(SEQ_FILE), config.setting(TASK), config.setting(TRACEPARENT))

    def to_meta(self) -> dict[str, str]:
        meta = {_META_RUN: self.run_id, _META_SEQ_FILE: self.seq_file, _META_TASK: self.task}
        if self.traceparent:
            meta["traceparent"] = self.traceparent
        return meta

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any] | None) -> "RunLink | None":
        if not meta or not isinstance(meta.get(_META_RUN), str) or not meta[_META_RUN]:
            return None
        return cls(meta[_META_RUN], str(meta.get(_META_SEQ_FILE) or ""), str(meta.get(_META_TASK) or ""),
                   str(meta.get("traceparent") or ""))


def child_link() -> RunLink | None:
    """A link for work of the current run that starts in another process now; ``None`` outside a run.

    Shares the run (its sequence moves to the shared file) and takes a child
    task path; call it once per process or request, in program order.
    """
    run = current_run()
    if run is None:
        return None
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    return RunLink(run.run_id, run.share(), _tasks.child_path(), carrier.get("traceparent", ""))


def _context_of(link: RunLink) -> otel_context.Context | None:
    if not link.traceparent:
        return None
    return _propagator.extract({"traceparent": link.traceparent})


@contextlib.contextmanager
def joined(link: RunLink) -> Iterator[Run]:
    """Inside the block, this context is part of the linked run (one request of a server)."""
    run = Run.joined(link.run_id, link.seq_file)
    run_token = use(run)
    task_token = _tasks.enter(link.task)
    parent = _context_of(link)
    context_token = otel_context.attach(parent) if parent is not None else None
    try:
        yield run
    finally:
        if context_token is not None:
            otel_context.detach(context_token)
        _tasks.reset(task_token)
        unuse(run_token)


class ProcessMembership:
    """The whole process joins the linked run — every thread, task and event in it; :meth:`leave` undoes it."""

    def __init__(self, link: RunLink) -> None:
        self.link = link
        self.run = Run.joined(link.run_id, link.seq_file)
        self._run_token = activate(self.run)
        self._task_token = _tasks.enter(link.task)
        parent = _context_of(link)
        self._context_token = otel_context.attach(parent) if parent is not None else None

    def leave(self) -> None:
        if self._context_token is not None:
            with contextlib.suppress(ValueError):
                otel_context.detach(self._context_token)
        _tasks.reset(self._task_token)
        deactivate(self.run, self._run_token)
