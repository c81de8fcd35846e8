"""MCP (the ``mcp`` package, 2.x): client requests as events, server handlers in the caller's run.

Client side — every request a ``ClientSession`` sends (``Client`` goes
through it too) is one event, except the transport's own handshake
(``initialize``, ``server/discover``, ``ping``):

- ``tools/call`` is a ``tool_call`` event named ``execute_tool <tool>``, with
  the GenAI tool attributes, like a local ``@tracetape.tool`` call;
- every other request (``tools/list``, ``resources/list``,
  ``resources/read``, ``prompts/get``, ...) is an ``other`` event named
  ``<method> [<name or uri>]`` with ``mcp.method.name``.

The ``request`` payload is ``{"method", "params"}`` without ``_meta``; the
``response`` payload is the typed result as JSON (or ``{"error": ...}``
when the server answered with a JSON-RPC error), and replay rebuilds the
SDK's own result type from it (``CallToolResult``, ``ListToolsResult``, ...)
so the session's post-processing (output-schema validation) runs as usual.
A result with ``isError`` is a result, not an exception: the span gets
``error.type = tool_error`` and replay returns it as recorded.

The SDK makes its own ``MCP send ...`` client span per request; inside one
of our events that span is folded into ours (one event per call), and the
W3C ``traceparent`` it injects into ``params._meta`` is therefore ours. We
add the run link next to it (``tracetape/run``, ``tracetape/seq_file``,
``tracetape/task``).

Server side — a server that called ``tracetape.instrument()`` joins the
caller's run for each request that carries the link: the SDK's own
``tools/call <tool>`` server span (and everything the handler does: tool
calls, HTTP, subprocesses) lands in the caller's run, as children of the
caller's event, numbered in a child task of the caller's task. The SDK's
server span is marked ``other`` (the call is already counted once, on the
client), with the request params and the result as ``params`` / ``result``
payloads. These events happen in the server's process, so a replay — which
serves the client's call — does not produce them again.
"""

from __future__ import annotations

import contextlib
import functools
import json
import threading
from contextvars import ContextVar
from typing import Any, Callable, Collection, Iterator

from opentelemetry import trace
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor
from opentelemetry.trace import Span

from tracetape.schemas import attributes as A
from tracetape.schemas.events import EventKind

from . import seam
from ._boundary import ask_player, finish, record_error, recorded_error, start, suppressed
from ._guard import guarded
from ._links import RunLink, child_link, joined
from ._deferred import DeferredPatches
from ._payload import attach, preview, to_json_bytes
from ._tasks import start_detached

__all__ = ["MCPInstrumentor", "PARAMS", "RESULT"]

PARAMS, RESULT = "params", "result"  # payload roles of the server-side span
# The transport's own requests, and the long-lived event stream: not calls the agent makes.
_HANDSHAKE = frozenset({"initialize", "server/discover", "ping", "subscriptions/listen"})
_METHOD = "mcp.method.name"
_RESOURCE_URI = "mcp.resource.uri"
_TOOL_ERROR = "tool_error"


class _Call:
    """The client event in progress in this context, for the SDK's dispatcher to see."""

    __slots__ = ("link",)

    def __init__(self, link: RunLink | None) -> None:
        self.link = link


_call: ContextVar[_Call | None] = ContextVar("tracetape_mcp_call", default=None)


# -- client ------------------------------------------------------------------------

def _describe(request: Any) -> tuple[str, EventKind, bytes, dict[str, Any]]:
    data = request.model_dump(by_alias=True, mode="json", exclude_none=True)
    method = str(data["method"])
    params = {k: v for k, v in (data.get("params") or {}).items() if k != "_meta"}
    payload = to_json_bytes({"method": method, "params": params})
    attributes: dict[str, Any] = {_METHOD: method}
    if method == "tools/call":
        tool = str(params.get("name", ""))
        attributes.update({
            A.GEN_AI_OPERATION_NAME: "execute_tool", A.GEN_AI_TOOL_NAME: tool,
            A.GEN_AI_TOOL_CALL_ARGUMENTS: preview(json.dumps(params.get("arguments") or {}, ensure_ascii=False)),
        })
        return f"execute_tool {tool}", EventKind.TOOL_CALL, payload, attributes
    target = params.get("name") or params.get("uri") or ""
    if "uri" in params:
        attributes[_RESOURCE_URI] = str(params["uri"])
    return f"{method} {target}".strip(), EventKind.OTHER, payload, attributes


def _dump(result: Any) -> bytes:
    return to_json_bytes(result.model_dump(mode="json", by_alias=True, exclude_none=True))


def _finish_result(span: Span, response: bytes | None, method: str) -> None:
    try:
        if method == "tools/call" and response is not None:
            body = json.loads(response)
            span.set_attribute(A.GEN_AI_TOOL_CALL_RESULT, preview(json.dumps(body.get("content", body),
                                                                             ensure_ascii=False)))
            if body.get("isError"):
                record_error(span, error_type=_TOOL_ERROR, message="the tool reported an error")
    finally:
        finish(span, response)


def _failure(exc: BaseException) -> bytes:
    error = getattr(exc, "error", None)
    if error is not None and hasattr(error, "code"):
        return to_json_bytes({"error": {"code": error.code, "message": error.message, "data": error.data}})
    return to_json_bytes({"error": {"message": str(exc)}})


def _rebuild(result_type: Any, served: seam.Served) -> Any:
    """The served result as the SDK's own type, or the recorded error raised again."""
    body = json.loads(served.response) if served.response else {}
    if served.error_type and served.error_type != _TOOL_ERROR:
        error = body.get("error") or {}
        if "code" in error:
            from mcp.shared.exceptions import MCPError

            raise MCPError(code=error["code"], message=error.get("message", ""), data=error.get("data"))
        raise recorded_error(served)
    if hasattr(result_type, "validate_python"):
        return result_type.validate_python(body, by_name=False)
    return result_type.model_validate(body, by_name=False)


@contextlib.contextmanager
def _inside(span: Span | None, link: RunLink | None) -> Iterator[None]:
    token = _call.set(_Call(link))
    try:
        if span is None:
            yield
        else:
            with trace.use_span(span, end_on_exit=False, record_exception=False, set_status_on_exception=False):
                yield
    finally:
        _call.reset(token)


def _send_request(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    async def send_request(self: Any, request: Any, result_type: Any, *args: Any, **kwargs: Any) -> Any:
        if suppressed() or getattr(request, "method", "") in _HANDSHAKE:
            return await original(self, request, result_type, *args, **kwargs)
        described = guarded(_describe, request)
        if described is None:
            return await original(self, request, result_type, *args, **kwargs)
        name, kind, payload, attributes = described
        span = guarded(start, name, kind, payload, attributes)
        served = ask_player(span, kind, name, payload)
        method = attributes[_METHOD]
        with _inside(span, None):
            # Taken whether served or not, so task numbering matches between recording and replay.
            link = guarded(child_link)
        if served is not None:
            try:
                result = _rebuild(result_type, served)
            except BaseException as exc:
                if span is not None:
                    guarded(finish, span, served.response or None, exc)
                raise
            if span is not None:
                guarded(_finish_result, span, served.response, method)
            return result
        try:
            with _inside(span, link):
                result = await original(self, request, result_type, *args, **kwargs)
        except BaseException as exc:
            if span is not None:
                guarded(finish, span, _failure(exc), exc)
            raise
        if span is not None:
            guarded(_finish_result, span, guarded(_dump, result), method)
        return result

    return send_request


def _folded_otel_span(original: Callable[..., Any]) -> Callable[..., Any]:
    """The dispatcher's span context manager: inside our event, our span stands in for the SDK's."""
    @functools.wraps(original)
    def otel_span(*args: Any, **kwargs: Any) -> Any:
        if _call.get() is None:
            return original(*args, **kwargs)
        return contextlib.nullcontext(trace.get_current_span())

    return otel_span


def _linked_inject(original: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    """The dispatcher's trace-context injection, plus the run link of the event in progress."""
    @functools.wraps(original)
    def inject_trace_context(meta: dict[str, Any]) -> None:
        original(meta)
        call = _call.get()
        if call is not None and call.link is not None:
            meta.update(call.link.to_meta())

    return inject_trace_context


# -- server ------------------------------------------------------------------------

def _observe(span: Span, ctx: Any) -> bool:
    """Mark the SDK's server span of this request as ours to annotate; False when there is none."""
    attributes = getattr(span, "attributes", None) or {}
    if not span.is_recording() or attributes.get(_METHOD) != ctx.method:
        return False
    span.set_attribute(A.EVENT_KIND, EventKind.OTHER.value)
    params = {k: v for k, v in dict(ctx.params or {}).items() if k != "_meta"}
    attach(span, PARAMS, to_json_bytes(params))
    return True


def _observing(inner: Callable[[Any], Any]) -> Callable[[Any], Any]:
    async def observed(ctx: Any) -> Any:
        if ctx.request_id is None or ctx.method in _HANDSHAKE:
            return await inner(ctx)
        span = trace.get_current_span()
        if not guarded(_observe, span, ctx):
            return await inner(ctx)
        result = await inner(ctx)
        guarded(attach, span, RESULT, to_json_bytes(result))
        return result

    return observed


class _PromptFlush:
    """Pushes a server's events out right after each request that joined a run.

    MCP clients close a stdio server and kill it if it has not exited ~2 s
    later; events still waiting in the export batch at that moment would be
    lost. One background thread flushes whenever a request ends.
    """

    def __init__(self) -> None:
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def poke(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="tracetape-mcp-flush", daemon=True)
                start_detached(self._thread)
        self._wake.set()

    def _loop(self) -> None:
        from ._setup import flush

        while True:
            self._wake.wait()
            self._wake.clear()
            guarded(flush, 5.0)


_prompt_flush = _PromptFlush()


def _joining(call: Callable[[Any], Any]) -> Callable[[Any], Any]:
    async def joined_call(ctx: Any) -> Any:
        link = guarded(RunLink.from_meta, getattr(ctx, "meta", None))
        if link is None:
            return await call(ctx)
        try:
            with joined(link):
                return await call(ctx)
        finally:
            _prompt_flush.poke()

    return joined_call


def _compose(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def _compose_server_middleware(self: Any, inner: Callable[[Any], Any]) -> Callable[[Any], Any]:
        return _joining(original(self, _observing(inner)))

    return _compose_server_middleware


def _dispatcher_patches(dispatcher: Any) -> list[tuple[Any, str, Any]]:
    if not (hasattr(dispatcher, "otel_span") and hasattr(dispatcher, "inject_trace_context")):
        return []  # another SDK layout: calls are still recorded, the SDK's span stays, no run link in _meta
    return [
        (dispatcher, "otel_span", _folded_otel_span(dispatcher.otel_span)),
        (dispatcher, "inject_trace_context", _linked_inject(dispatcher.inject_trace_context)),
    ]


def _deferred() -> DeferredPatches:
    return DeferredPatches([
        ("mcp.client.session", lambda module: [
            (module.ClientSession, "send_request", _send_request(module.ClientSession.send_request))]),
        ("mcp.server.runner", lambda module: [
            (module.ServerRunner, "_compose_server_middleware",
             _compose(module.ServerRunner._compose_server_middleware))]),
        ("mcp.shared.jsonrpc_dispatcher", _dispatcher_patches),
    ])


class MCPInstrumentor(BaseInstrumentor):
    """Registered as the ``tracetape_mcp`` opentelemetry_instrumentor entry point.

    The SDK is patched when the application imports it (importing ``mcp``
    takes seconds; a process that never uses it never pays for it).
    """

    _patches: DeferredPatches | None = None

    def instrumentation_dependencies(self) -> Collection[str]:
        return ("mcp >= 2",)

    def _instrument(self, **kwargs: Any) -> None:
        self._patches = self._patches or _deferred()
        self._patches.apply()

    def _uninstrument(self, **kwargs: Any) -> None:
        if self._patches is not None:
            self._patches.undo()
