"""Stamps every span with its run, sequence number and task at start (and project, if need be).

Doing it in a SpanProcessor means spans from any instrumentation, ours or
another library's, that start inside a run get a place in its order.
"""

from __future__ import annotations

import time
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import StatusCode

from tracetape.schemas import attributes as A

from ._runs import Run, current_run
from ._tasks import current_task_path

__all__ = ["RunSpanProcessor", "current_stamp"]

_wall_ns = time.time_ns  # bound at import, before instrument() patches the clock
# The project attribute every stamp carries, if the spans need one (set by the processor, see there).
_project: dict[str, str] = {}


def _stamp(run: Run) -> dict[str, Any]:
    return {A.RUN_ID: run.run_id, A.SEQ: run.next_seq(), A.TASK: current_task_path(), **_project}


def current_stamp() -> tuple[int, dict[str, Any]]:
    """(start time in ns, the attributes that place a span in the current run's order: none outside a run),
    for a span our own code starts with that start time.

    Passed with its other attributes, they spare the processor a second attribute pass (a lock and a
    validation of every value, several µs a span). The clock is read before the sequence number is
    drawn, as the SDK does for the spans the processor stamps: then an event that ended before another
    started always has the smaller number (drawn before it ended, so before the other's start time, so
    before the other's number), whatever thread switch falls between the two reads.
    """
    start = _wall_ns()
    run = current_run()
    return start, (_stamp(run) if run is not None else {})


class RunSpanProcessor(SpanProcessor):
    def __init__(self, project: str, resource: Resource) -> None:
        # The project travels once per export in the Resource, which the collector reads when a span
        # names none; only a provider the app made itself, whose Resource lacks it, needs it per span.
        # It goes in every stamp (one instrumentation, one processor, one project at a time).
        global _project
        _project = {} if resource.attributes.get(A.PROJECT) == project else {A.PROJECT: project}
        # span id -> run, for spans open now: on_end gets a different object
        # than on_start, and may run in another thread after the run's
        # context is gone. Entries live exactly as long as their span.
        self._open: dict[int, Run] = {}

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        run = current_run()
        if run is None:
            return
        if A.SEQ not in span.attributes:
            span.set_attributes(_stamp(run))
        self._open[span.context.span_id] = run

    def on_end(self, span: ReadableSpan) -> None:
        run = self._open.pop(span.context.span_id, None) if span.context else None
        if run is None:
            return
        attrs = span.attributes or {}
        kind = attrs.get(A.EVENT_KIND)
        # Only tracetape's own events count: an SDK that traces itself (the
        # anthropic SDK does) nests a span with the same usage under ours.
        if kind is None or kind == "run":
            return
        model_call = kind == "model_call"
        run.add_usage(
            int(attrs.get(A.GEN_AI_USAGE_INPUT_TOKENS, 0) or 0) if model_call else 0,
            int(attrs.get(A.GEN_AI_USAGE_OUTPUT_TOKENS, 0) or 0) if model_call else 0,
            span.status.status_code is StatusCode.ERROR,
        )

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
