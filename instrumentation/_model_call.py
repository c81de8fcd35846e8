"""One model call, whatever the SDK: its span, its exchange on the wire, its one ending.

Each SDK patch works at two points. Around the client's ``request()`` (one
per API call, retries included) the call's span is started, made current, and
the call is marked as in progress (:mod:`._nesting`) so lower-level HTTP
patches stand aside. Where the SDK sends the HTTP request, the exact request
body is taken, the replay seam is asked, and the exact response is captured:
read whole for a plain response, or recorded event by event for a stream
(:mod:`._stream`), in which case the stream's end ends the span.

The request blob is the request body as sent; the response blob is the body as
received (decoded), for a stream the whole SSE text. A stream's chunks are its
SSE events, in that blob, in order; ``tracetape.stream.offsets_ms`` holds, for
each one, the milliseconds from sending the request to its arrival, so a
player can serve the same events at the same pace (and a reader can pair
``split_events(response)`` with the offsets). A separate chunks payload would
repeat every byte of the response, and cost as much again to hash and upload.
"""

from __future__ import annotations

import json
from abc import abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx2
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor
from opentelemetry.trace import SpanKind, Status, StatusCode

from tracetape.schemas.attributes import (
    RESPONSE_CONTENT_TYPE as CONTENT_TYPE, RESPONSE_REQUEST_ID as REQUEST_ID, STREAM_COMPLETED, STREAM_CHUNKS,
    STREAM_OFFSETS_MS as STREAM_OFFSETS,
)
from tracetape.schemas import attributes as A
from tracetape.schemas.events import EventKind

from . import _endings, _json, _nesting, seam
from ._boundary import serve, tracer
from ._guard import guarded
from ._patches import PatchSet
from ._payload import payload_attributes, redacted, run_of, to_json_bytes
from ._processor import current_stamp
from ._stream import RecordedStream, install_recorder, now_ns as _now, split_events

__all__ = ["Api", "ModelCall", "PatchingInstrumentor", "begin", "request_wrapper", "async_request_wrapper",
           "recorded_response", "recorded_message", "current_call", "request_body", "STATUS",
           "CONTENT_TYPE", "REQUEST_ID", "STREAM_COMPLETED", "STREAM_CHUNKS", "STREAM_OFFSETS", "REPLAY_PACE"]

STATUS = "http.response.status_code"
SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"
REPLAY_PACE = "tracetape.replay.pace"  # set by a player on Served.attributes: "recorded" paces streams

_UNASKED = object()


@dataclass(frozen=True)
class Api:
    """One model endpoint: how its traffic maps to GenAI attributes."""

    operation: str
    request: Callable[[Mapping[str, Any]], dict[str, Any]]
    response: Callable[[bytes], dict[str, Any]]
    stream: Callable[[Sequence[bytes]], dict[str, Any]]
    terminal: tuple[bytes, ...]  # prefixes of the provider's last stream event
    request_id_header: str = "x-request-id"


class ModelCall:
    """State of one model call from ``request()`` to the end of its response or stream."""

    __slots__ = ("span", "api", "name", "streaming", "body", "request", "response", "status", "content_type",
                 "request_id", "events", "offsets", "sent_ns", "started_ns", "last_ns", "completed", "served",
                 "recording", "finalizer", "_once", "_tokens")

    def __init__(self, span: Any, api: Api, name: str, streaming: bool, body: Mapping[str, Any]) -> None:
        self.span = span
        self.api = api
        self.name = name
        self.streaming = streaming
        self.body = body
        self.request: bytes | None = None
        self.response: bytes | None = None
        self.status: int | None = None
        self.content_type = ""
        self.request_id = ""
        self.events: list[bytes] = []
        self.offsets: list[int] = []
        self.started_ns = self.sent_ns = self.last_ns = _now()
        self.completed = False
        self.served: Any = _UNASKED
        self.recording = False  # True once a stream recorder owns the end of this call
        self.finalizer: Any = None
        self._once = [True]

    # -- the exchange, attempt by attempt ------------------------------------

    def sending(self, request: bytes | None) -> None:
        """A new HTTP attempt: what an earlier attempt received no longer counts."""
        self.request = request
        self.response = self.status = None
        self.sent_ns = _now()

    def demote_current(self) -> None:
        """Mark a GenAI span that another instrumentation opened inside this call as not an event."""
        current = trace.get_current_span()
        if current is not self.span:
            _demote(current)

    def serve(self) -> seam.Served | None:
        """Ask the replay seam once per call: a retried attempt gets the same answer."""
        if self.served is _UNASKED:
            self.served = serve(EventKind.MODEL_CALL, self.name, self.request or b"")
        return self.served

    def received(self, response: httpx2.Response, asynchronous: bool) -> bool:
        """Note the response; True when its body still has to be read into ``self.response``."""
        self.status = response.status_code
        headers = response.headers
        self.content_type = headers.get("content-type", "")
        self.request_id = headers.get(self.api.request_id_header, "")
        if self.streaming and 200 <= self.status < 300:
            install_recorder(response, self, asynchronous)
            self.recording = True
            return False
        return True

    # -- the SDK's request() runs inside the call --------------------------------

    def __enter__(self) -> ModelCall:
        """The span is current and the call marked in progress while the SDK's ``request()`` runs."""
        self._tokens = (_nesting.enter(self), otel_context.attach(trace.set_span_in_context(self.span)))
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, traceback: Any) -> None:
        marked, context = self._tokens
        otel_context.detach(context)
        _nesting.leave(marked)
        if exc is not None:
            self.finish(exc)  # the user's exception is recorded and goes on unchanged
        elif not self.recording:
            self.finish()  # a stream's recorder ends it when the stream ends

    # -- the one ending ------------------------------------------------------

    def finish(self, error: BaseException | None = None, completed: bool | None = None,
               collected: bool = False) -> None:
        """End the span, exactly once, from whichever exit comes first.

        The ending (redacting and hashing the payloads, the GenAI attributes, ending the span, at the
        time taken here) runs in the next batch of endings while ``instrument()`` is in force
        (:mod:`._endings`, which says why), else at once.
        """
        try:
            self._once.pop()
        except IndexError:
            return
        if self.finalizer is not None:
            self.finalizer.detach()
        # A stream nobody closed ends when it was last read from, not when the collector found it.
        ended_ns = self.last_ns if collected else _now()
        _endings.end(_end, self, error, completed, ended_ns)


def _end(call: ModelCall, error: BaseException | None, completed: bool | None, ended_ns: int) -> None:
    span = call.span
    try:
        # One call sets them all: each set_attribute(s) call costs the OTel SDK a lock and a pass.
        span.set_attributes(guarded(_attributes, call, error, completed) or {})
        if error is not None:
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
            span.set_attribute(A.ERROR_TYPE, type(error).__qualname__)
    finally:
        start = getattr(span, "start_time", None)
        span.end(end_time=start + (ended_ns - call.started_ns) if start else None)


def _attributes(call: ModelCall, error: BaseException | None, completed: bool | None) -> dict[str, Any]:
    """Everything the call's span gets at its end: payloads, the request's and the response's attributes."""
    run_id = run_of(call.span)
    request = call.request if call.request is not None else to_json_bytes(call.body)
    attributes = payload_attributes(run_id, seam.REQUEST, redacted(seam.REQUEST, request))
    # The request's GenAI attributes (messages and tools previews, sampling parameters) are made here: only
    # what a sampler may use is set at the start (see ``begin``).
    attributes.update(guarded(call.api.request, call.body) or {})
    if call.status is not None:
        attributes[STATUS] = call.status
        attributes[CONTENT_TYPE] = call.content_type
        if call.request_id:
            attributes[REQUEST_ID] = call.request_id
    if call.recording:
        events = call.events
        attributes.update(payload_attributes(run_id, seam.RESPONSE, redacted(seam.RESPONSE, b"".join(events)),
                                             "text/event-stream"))
        attributes[STREAM_COMPLETED] = call.completed if completed is None else completed
        attributes[STREAM_CHUNKS] = len(events)
        # One JSON string, not a float array: OTel would check every element of an array.
        attributes[STREAM_OFFSETS] = _json.dumps([offset // 1000 / 1000 for offset in call.offsets])
        attributes.update(guarded(call.api.stream, events) or {})
    elif call.response is not None:
        attributes.update(payload_attributes(run_id, seam.RESPONSE, redacted(seam.RESPONSE, call.response)))
        if error is None:
            attributes.update(guarded(call.api.response, call.response) or {})
    return attributes


def begin(api: Api, provider: str, body: Mapping[str, Any], streaming: bool, server: tuple[str, int] | None,
          ) -> ModelCall:
    """Start the span of one model call, with the attributes the GenAI conventions want at start.

    Those are the ones a sampler may decide on (operation, provider, model, server). The previews of
    the request are made from *body* when the call ends, with every other attribute in one call: each
    ``set_attributes`` costs the OTel SDK a lock and a validation pass. The SDKs build *body* afresh
    for each request, so it still holds what was sent; the exact bytes sent are the ``request``
    payload either way.
    """
    model = str(body.get("model") or "")
    name = f"{api.operation} {model}" if model else api.operation
    guarded(_demote, trace.get_current_span())
    start_time, stamp = current_stamp()  # with the others: the run processor then sets none itself
    attributes: dict[str, Any] = {
        A.EVENT_KIND: EventKind.MODEL_CALL.value,
        A.GEN_AI_OPERATION_NAME: api.operation,
        A.GEN_AI_PROVIDER_NAME: provider,
        A.GEN_AI_REQUEST_MODEL: model,
        **stamp,
    }
    if server is not None:
        attributes[SERVER_ADDRESS], attributes[SERVER_PORT] = server
    span = tracer().start_span(name, kind=SpanKind.CLIENT, attributes=attributes, start_time=start_time)
    return ModelCall(span, api, name, streaming, body)


def _demote(span: Any) -> None:
    """Keep one model-call event per call when another GenAI instrumentation traces the same call.

    OpenLLMetry and the official OpenTelemetry instrumentation wrap ``create()``
    (their span encloses ours); the anthropic SDK traces itself inside
    ``request()`` (its span is inside ours). Left alone, such a span would read
    as a second model call of the run, and its token usage would count twice.
    It stays in the trace, marked ``tracetape.event.kind = other``.
    """
    attributes = getattr(span, "attributes", None)
    if attributes and A.GEN_AI_OPERATION_NAME in attributes and A.EVENT_KIND not in attributes \
            and span.is_recording():
        span.set_attribute(A.EVENT_KIND, EventKind.OTHER.value)


def request_body(options: Any) -> Mapping[str, Any]:
    """The body an SDK's request options will send, ``extra_body`` included (the SDKs merge it later)."""
    body = options.json_data if isinstance(options.json_data, Mapping) else {}
    extra = getattr(options, "extra_json", None)
    return {**body, **extra} if extra else body


def current_call() -> ModelCall | None:
    call = _nesting.current()
    return call if isinstance(call, ModelCall) else None


def request_wrapper(start: Callable[[Any, tuple, dict], ModelCall | None]) -> Callable[..., Any]:
    """A wrapt wrapper for a client's sync ``request()``: one span per model call."""

    def wrapper(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
        call = None if _nesting.current() is not None else guarded(start, instance, args, kwargs)
        if call is None:
            return wrapped(*args, **kwargs)
        with call:
            return wrapped(*args, **kwargs)

    return wrapper


def async_request_wrapper(start: Callable[[Any, tuple, dict], ModelCall | None]) -> Callable[..., Any]:
    """The async twin of :func:`request_wrapper`."""

    async def wrapper(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
        call = None if _nesting.current() is not None else guarded(start, instance, args, kwargs)
        if call is None:
            return await wrapped(*args, **kwargs)
        with call:
            return await wrapped(*args, **kwargs)

    return wrapper


def _offsets_ns(value: Any) -> list[int] | None:
    """Recorded stream offsets (ms) as ns; stores hand attributes back as JSON text."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    return [int(float(v) * 1e6) for v in value] if isinstance(value, (list, tuple)) else None


def recorded_message(served: seam.Served, default: str) -> str:
    """The recorded error's message, without the ``Type: `` the span status puts in front."""
    message = served.error_message
    prefix = served.error_type.rsplit(".", 1)[-1] + ": "
    return (message[len(prefix):] if message.startswith(prefix) else message) or default


def _stream_error(served: seam.Served) -> BaseException:
    """The transport error that cut the recorded stream short, for the SDK to wrap as it did then."""
    cls = getattr(httpx2, served.error_type, None)
    message = recorded_message(served, "recorded stream failure")
    return cls(message) if isinstance(cls, type) and issubclass(cls, httpx2.TransportError) else \
        httpx2.ReadError(message)


def recorded_response(call: ModelCall, served: seam.Served, request: httpx2.Request,
                      no_response: Callable[[seam.Served, httpx2.Request], BaseException]) -> httpx2.Response:
    """The recorded exchange as the SDK's own httpx2 response, so the SDK parses it as usual.

    A recording with no HTTP status failed before any response arrived; then
    ``no_response`` builds the SDK error to raise. ``x-should-retry: false``
    keeps the SDK from retrying a recorded error response.
    """
    attributes = served.attributes
    status = attributes.get(STATUS)
    if status in (None, ""):
        raise no_response(served, request)
    status = int(status)
    headers = {"content-type": str(attributes.get(CONTENT_TYPE) or "application/json"), "x-should-retry": "false"}
    if attributes.get(REQUEST_ID):
        headers[call.api.request_id_header] = str(attributes[REQUEST_ID])
    if not (call.streaming and 200 <= status < 300):
        return httpx2.Response(status, headers=headers, content=served.response, request=request)
    events, rest = split_events(served.response)
    paced = attributes.get(REPLAY_PACE) == "recorded"
    stream = RecordedStream(events + [rest] if rest else events,
                            _offsets_ns(attributes.get(STREAM_OFFSETS)) if paced else None,
                            _stream_error(served) if served.error_type else None)
    return httpx2.Response(status, headers=headers, stream=stream, request=request)


class PatchingInstrumentor(BaseInstrumentor):
    """An instrumentor whose patches form one :class:`PatchSet`: applied together, undone together.

    A patch on a class that only inherits the attribute is undone by deleting
    it again, so uninstrumenting leaves the classes exactly as they were.
    """

    _patches: PatchSet | None = None

    @abstractmethod
    def _patch_list(self) -> list[tuple[Any, str, Any]]:
        """(owner, attribute, replacement) for every patch of this instrumentor."""

    def _instrument(self, **kwargs: Any) -> None:
        self._patches = PatchSet(self._patch_list())
        self._patches.apply()

    def _uninstrument(self, **kwargs: Any) -> None:
        if self._patches is not None:
            self._patches.undo()
            self._patches = None
