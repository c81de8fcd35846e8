"""The user-facing capture API: ``run`` marks an agent run, ``tool`` records tool calls.

Both take part in replay through the seam: a tool call asks the installed
player first and, when served, returns the recorded result (or raises the
recorded error) without running the tool's body; a run started under a
player is stamped with its link to the recorded run (parent run id and fork
step), so replays and forks are runs of their own.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
from typing import Any, Callable, Iterable, Iterator, TypeVar, overload

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from tracetape.schemas import attributes as A
from tracetape.schemas.events import EventKind

from . import _endings, seam
from ._boundary import ask_player, recorded_error, tracer
from ._guard import guarded
from ._payload import payload_attributes, preview_of, redacted, run_finished, run_of, to_json_bytes
from ._processor import current_stamp
from ._runs import Run, activate, deactivate
from ._tasks import new_root, reset
from ._values import close_run
from .environment import snapshot
from .seam import REQUEST, RESPONSE

__all__ = ["run", "tool"]

F = TypeVar("F", bound=Callable[..., Any])
# The replay mode a run was started under (strict, observe, fork, loose); absent on recorded runs.
REPLAY_MODE = "tracetape.replay.mode"


def _mark_error(span: Span, exc: BaseException) -> None:
    span.record_exception(exc)
    span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
    span.set_attribute(A.ERROR_TYPE, type(exc).__qualname__)


@contextlib.contextmanager
def run(agent: str, tags: Iterable[str] = (), *, run_id: str | None = None) -> Iterator[Run]:
    """Mark one agent run: every event inside gets its run id and sequence number.

    The run itself is the first event (an ``invoke_agent`` span), the
    environment it starts in the second (see ``environment``: replay restores
    it); the run's outcome is ``error`` if the body raises, and the exception
    passes through unchanged.
    """
    link = guarded(seam.lineage)
    current = Run(run_id or Run.new_id(), agent, tuple(str(t) for t in tags))
    attributes: dict[str, Any] = {
        A.EVENT_KIND: EventKind.RUN.value,
        A.GEN_AI_OPERATION_NAME: "invoke_agent",
        A.GEN_AI_AGENT_NAME: agent,
        A.RUN_TAGS: list(current.tags),
    }
    if link is not None:
        current.parent_run_id, current.fork_step = link.parent_run_id, link.fork_step
        attributes.update({A.RUN_PARENT_ID: link.parent_run_id, A.RUN_FORK_STEP: link.fork_step,
                           REPLAY_MODE: link.mode})
    token = activate(current)
    task_token = new_root()
    span = tracer().start_span(f"invoke_agent {agent}", kind=SpanKind.INTERNAL, attributes=attributes)
    outcome = "ok"
    try:
        with trace.use_span(span, end_on_exit=False, record_exception=False, set_status_on_exception=False):
            snapshot()
            yield current
    except BaseException as exc:
        outcome = "error"
        guarded(_mark_error, span, exc)
        raise
    finally:
        reset(task_token)
        deactivate(current, token)
        guarded(_finish_run, span, current, outcome)


def _finish_run(span: Span, current: Run, outcome: str) -> None:
    _endings.drain()  # the run's model calls count in its totals, and their payloads in its sampling
    close_run(current)
    span.set_attribute(A.RUN_OUTCOME, outcome)
    span.set_attribute(A.RUN_EVENT_COUNT, current.event_count)
    span.set_attribute(A.RUN_ERROR_COUNT, current.errors)
    span.set_attribute(A.GEN_AI_USAGE_INPUT_TOKENS, current.input_tokens)
    span.set_attribute(A.GEN_AI_USAGE_OUTPUT_TOKENS, current.output_tokens)
    span.end()
    run_finished(current.run_id, outcome)


class _Binder:
    """Arguments by parameter name, as ``Signature.bind_partial`` gives them, without its cost when the
    signature is plain (no ``*args``/``**kwargs``, no positional-only parameters): most tools'."""

    __slots__ = ("signature", "positional", "names")

    def __init__(self, func: Callable[..., Any]) -> None:
        try:
            self.signature: inspect.Signature | None = inspect.signature(func)
        except (TypeError, ValueError):
            self.signature = None
        params = list(self.signature.parameters.values()) if self.signature is not None else []
        plain = self.signature is not None and all(p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
                                                   for p in params)
        self.positional = tuple(p.name for p in params if p.kind is p.POSITIONAL_OR_KEYWORD) if plain else None
        self.names = frozenset(p.name for p in params)

    def __call__(self, args: tuple, kwargs: dict) -> dict[str, Any]:
        positional = self.positional
        if positional is not None and len(args) <= len(positional) and self.names.issuperset(kwargs) \
                and kwargs.keys().isdisjoint(positional[:len(args)]):
            bound = dict(zip(positional, args))
            bound.update(kwargs)
        elif self.signature is None:
            return {"args": list(args), "kwargs": kwargs}
        else:
            bound = self.signature.bind_partial(*args, **kwargs).arguments
        bound.pop("self", None)
        bound.pop("cls", None)
        return bound


def _result_bytes(result: Any) -> bytes:
    """JSON in the result's own key order: replay decodes it back into an equal dict, iterated in the
    same order, so code that serializes the result again (into the next prompt) sends the same bytes."""
    return json.dumps(result, ensure_ascii=False, separators=(",", ":"), default=repr).encode()


def _replayed(served: seam.Served) -> Any:
    if served.error_type:
        raise recorded_error(served)
    return json.loads(served.response) if served.response else None


class _ToolCalls:
    """The recording of one tool function's calls: the same steps for its sync and async wrappers.

    The app thread does the least it can: the arguments are encoded and redacted once, and the
    previews are cut from the redacted payloads rather than scanned again.
    """

    __slots__ = ("name", "span_name", "bind")

    def __init__(self, name: str, func: Callable[..., Any]) -> None:
        self.name = name
        self.span_name = f"execute_tool {name}"
        self.bind = _Binder(func)

    def begin(self, args: tuple, kwargs: dict) -> tuple[Span | None, seam.Served | None, object]:
        """The call's span (made current), and its recorded outcome when a player serves it."""
        payload = guarded(self._request, args, kwargs)
        if payload is None:
            return None, None, None
        span = guarded(self._start, payload)
        served = ask_player(span, EventKind.TOOL_CALL, self.span_name, payload, redacted=True)
        if span is None:
            return None, served, None
        return span, served, otel_context.attach(trace.set_span_in_context(span))

    def _request(self, args: tuple, kwargs: dict) -> bytes:
        return redacted(REQUEST, to_json_bytes(self.bind(args, kwargs)))

    def _start(self, payload: bytes) -> Span:
        start, stamp = current_stamp()
        attributes = payload_attributes(stamp.get(A.RUN_ID), REQUEST, payload)
        attributes.update(stamp)
        attributes.update({
            A.EVENT_KIND: EventKind.TOOL_CALL.value,
            A.GEN_AI_OPERATION_NAME: "execute_tool",
            A.GEN_AI_TOOL_NAME: self.name,
            A.GEN_AI_TOOL_CALL_ARGUMENTS: preview_of(payload),
        })
        return tracer().start_span(self.span_name, kind=SpanKind.INTERNAL, attributes=attributes, start_time=start)

    @staticmethod
    def ended(span: Span | None, token: object, result: Any, served: seam.Served | None) -> Any:
        if span is not None:
            otel_context.detach(token)  # type: ignore[arg-type]
            guarded(_end_tool, span, result, served)
        return result

    @staticmethod
    def failed(span: Span | None, token: object, exc: BaseException) -> None:
        if span is not None:
            otel_context.detach(token)  # type: ignore[arg-type]
            guarded(_fail_tool, span, exc)


def _end_tool(span: Span, result: Any, served: seam.Served | None) -> None:
    # A served call records the exact bytes it was served (redacted when they were recorded), so the replay
    # run holds what the code saw and a replay of the replay matches byte for byte.
    payload = served.response if served is not None else redacted(RESPONSE, _result_bytes(result))
    attributes = payload_attributes(run_of(span), RESPONSE, payload)
    attributes[A.GEN_AI_TOOL_CALL_RESULT] = preview_of(payload)
    span.set_attributes(attributes)
    span.end()


def _fail_tool(span: Span, exc: BaseException) -> None:
    _mark_error(span, exc)
    span.end()


@overload
def tool(fn: F) -> F: ...
@overload
def tool(fn: None = None, *, name: str | None = None) -> Callable[[F], F]: ...


def tool(fn: F | None = None, *, name: str | None = None) -> F | Callable[[F], F]:
    """Record each call of a tool function (sync or async): arguments, result or error."""

    def decorate(func: F) -> F:
        calls = _ToolCalls(name or func.__name__, func)

        if inspect.iscoroutinefunction(func):
            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                span, served, token = calls.begin(args, kwargs)
                try:
                    result = _replayed(served) if served is not None else await func(*args, **kwargs)
                except BaseException as exc:
                    calls.failed(span, token, exc)
                    raise
                return calls.ended(span, token, result, served)

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            span, served, token = calls.begin(args, kwargs)
            try:
                result = _replayed(served) if served is not None else func(*args, **kwargs)
            except BaseException as exc:
                calls.failed(span, token, exc)
                raise
            return calls.ended(span, token, result, served)

        return wrapper  # type: ignore[return-value]

    return decorate(fn) if fn is not None else decorate
