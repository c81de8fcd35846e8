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

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from tracetape.schemas import attributes as A
from tracetape.schemas.events import EventKind

from . import seam
from ._boundary import ask_player, recorded_error
from ._guard import guarded
from ._payload import attach, preview, run_finished, to_json_bytes
from ._runs import Run, activate, deactivate
from ._tasks import new_root, reset
from ._values import close_run
from .seam import REQUEST, RESPONSE

__all__ = ["run", "tool", "tracer"]

F = TypeVar("F", bound=Callable[..., Any])
# The replay mode a run was started under (strict, observe, fork, loose); absent on recorded runs.
REPLAY_MODE = "tracetape.replay.mode"


def tracer() -> trace.Tracer:
    return trace.get_tracer("tracetape")


def _mark_error(span: Span, exc: BaseException) -> None:
    span.record_exception(exc)
    span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
    span.set_attribute(A.ERROR_TYPE, type(exc).__qualname__)


@contextlib.contextmanager
def run(agent: str, tags: Iterable[str] = (), *, run_id: str | None = None) -> Iterator[Run]:
    """Mark one agent run: every event inside gets its run id and sequence number.

    The run itself is the first event (an ``invoke_agent`` span); its outcome
    is ``error`` if the body raises, and the exception passes through unchanged.
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
    close_run(current)
    span.set_attribute(A.RUN_OUTCOME, outcome)
    span.set_attribute(A.RUN_EVENT_COUNT, current.event_count)
    span.set_attribute(A.RUN_ERROR_COUNT, current.errors)
    span.set_attribute(A.GEN_AI_USAGE_INPUT_TOKENS, current.input_tokens)
    span.set_attribute(A.GEN_AI_USAGE_OUTPUT_TOKENS, current.output_tokens)
    span.end()
    run_finished(current.run_id, outcome)


def _bound_arguments(signature: inspect.Signature | None, args: tuple, kwargs: dict) -> dict[str, Any]:
    if signature is None:
        return {"args": list(args), "kwargs": kwargs}
    bound = signature.bind_partial(*args, **kwargs)
    return {k: v for k, v in bound.arguments.items() if k not in ("self", "cls")}


def _tool_request(signature: inspect.Signature | None, args: tuple, kwargs: dict) -> bytes:
    return to_json_bytes(_bound_arguments(signature, args, kwargs))


def _start_tool(name: str, payload: bytes) -> Span:
    span = tracer().start_span(f"execute_tool {name}", kind=SpanKind.INTERNAL, attributes={
        A.EVENT_KIND: EventKind.TOOL_CALL.value,
        A.GEN_AI_OPERATION_NAME: "execute_tool",
        A.GEN_AI_TOOL_NAME: name,
    })
    attach(span, REQUEST, payload)
    span.set_attribute(A.GEN_AI_TOOL_CALL_ARGUMENTS, preview(payload.decode("utf-8", "replace")))
    return span


def _result_bytes(result: Any) -> bytes:
    """JSON in the result's own key order: replay decodes it back into an equal dict, iterated in the
    same order, so code that serializes the result again (into the next prompt) sends the same bytes."""
    return json.dumps(result, ensure_ascii=False, separators=(",", ":"), default=repr).encode()


def _end_tool(span: Span, result: Any, served: seam.Served | None) -> None:
    # A served call records the exact bytes it was served, so the replay run holds what the code saw.
    payload = served.response if served is not None else _result_bytes(result)
    attach(span, RESPONSE, payload)
    span.set_attribute(A.GEN_AI_TOOL_CALL_RESULT, preview(payload.decode("utf-8", "replace")))
    span.end()


def _fail_tool(span: Span, exc: BaseException) -> None:
    _mark_error(span, exc)
    span.end()


def _begin_tool(name: str, signature: inspect.Signature | None, args: tuple, kwargs: dict
                ) -> tuple[Span | None, seam.Served | None]:
    """The tool call's span, and its recorded outcome when a player serves it."""
    payload = guarded(_tool_request, signature, args, kwargs)
    if payload is None:
        return None, None
    span = guarded(_start_tool, name, payload)
    return span, ask_player(span, EventKind.TOOL_CALL, f"execute_tool {name}", payload)


def _replayed(served: seam.Served) -> Any:
    if served.error_type:
        raise recorded_error(served)
    return json.loads(served.response) if served.response else None


@contextlib.contextmanager
def _tool_span(span: Span | None, served: seam.Served | None) -> Iterator[list[Any]]:
    """Run the body inside the tool call's span; the body appends the tool's result to the yielded list."""
    outcome: list[Any] = []
    if span is None:
        yield outcome
        return
    with trace.use_span(span, end_on_exit=False, record_exception=False, set_status_on_exception=False):
        try:
            yield outcome
        except BaseException as exc:
            guarded(_fail_tool, span, exc)
            raise
    guarded(_end_tool, span, outcome[0] if outcome else None, served)


@overload
def tool(fn: F) -> F: ...
@overload
def tool(fn: None = None, *, name: str | None = None) -> Callable[[F], F]: ...


def tool(fn: F | None = None, *, name: str | None = None) -> F | Callable[[F], F]:
    """Record each call of a tool function (sync or async): arguments, result or error."""

    def decorate(func: F) -> F:
        tool_name = name or func.__name__
        try:
            signature: inspect.Signature | None = inspect.signature(func)
        except (TypeError, ValueError):
            signature = None

        if inspect.iscoroutinefunction(func):
            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                span, served = _begin_tool(tool_name, signature, args, kwargs)
                with _tool_span(span, served) as outcome:
                    outcome.append(_replayed(served) if served is not None else await func(*args, **kwargs))
                return outcome[0]

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            span, served = _begin_tool(tool_name, signature, args, kwargs)
            with _tool_span(span, served) as outcome:
                outcome.append(_replayed(served) if served is not None else func(*args, **kwargs))
            return outcome[0]

        return wrapper  # type: ignore[return-value]

    return decorate(fn) if fn is not None else decorate


