"""Streamed model responses: recorded as they arrive, served back as they came.

Recording sits in the HTTP response's byte stream, below the SDK: whatever
the SDK builds on top (``Stream``, ``MessageStream``, ``responses.stream()``
managers, raw responses) reads through :class:`SSERecorder`, so one class
covers every streaming entry point of both SDKs, sync and async.

The recorder cuts the body at Server-Sent Event boundaries and hands the SDK
one whole event per read. The SDK's decoder then asks for the next event only
when its consumer asks for the next item, so "delivered to the SDK" tracks
"consumed by the caller": a stream is *completed* when the provider's final
event (or the end of the body) was delivered, not merely received.

The model-call span is ended by ONE idempotent finalizer,
:meth:`ModelCall.finish <tracetape.instrumentation._model_call.ModelCall.finish>`,
reached from every way a stream can end: exhaustion (end of body), an early
``break`` followed by ``close()``/``aclose()`` or ``__exit__``/``__aexit__``
(the SDKs close the HTTP response there, which closes this stream), an error
while reading, and garbage collection of a stream nobody closed (a
``weakref.finalize`` on the recorder). Losing the span on an early exit is the
most reported bug in other instrumentations; here every exit ends it once,
with what was received so far and ``tracetape.stream.completed``.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
import weakref
from typing import Any, AsyncIterator, Iterator, Sequence

import httpx2

__all__ = ["SSERecorder", "AsyncSSERecorder", "RecordedStream", "split_events", "sse_data", "install_recorder",
           "now_ns"]

now_ns = _now = time.perf_counter_ns  # bound at import: our own timing never goes through a patched clock
_sleep = time.sleep
_BOUNDARY = re.compile(rb"\r\n\r\n|\r\r|\n\n")
_LINE_END = re.compile(r"\r\n|\r|\n")


def split_events(data: bytes) -> tuple[list[bytes], bytes]:
    """Complete SSE events (each with its blank-line terminator) and the unfinished rest."""
    events: list[bytes] = []
    start = 0
    if b"\r" in data:
        for match in _BOUNDARY.finditer(data):
            events.append(data[start:match.end()])
            start = match.end()
    else:
        find = data.find
        while (end := find(b"\n\n", start)) >= 0:
            events.append(data[start:end + 2])
            start = end + 2
    return events, data[start:]


def sse_data(event: bytes) -> tuple[str, str]:
    """(event name, data) of one SSE event; data lines are joined as the SSE spec says."""
    name = ""
    data: list[str] = []
    for line in _LINE_END.split(event.decode("utf-8", "replace")):  # not splitlines(): SSE ends lines at CR, LF only
        if line.startswith("data:"):
            data.append(line[6:] if line.startswith("data: ") else line[5:])
        elif line.startswith("event:"):
            name = line[6:].strip()
    return name, "\n".join(data)


def _content_decoder(response: httpx2.Response) -> Any:
    """A decoder for a compressed body, taken over from httpx2 so events can be cut in plain text."""
    from httpx2._decoders import SUPPORTED_DECODERS

    codings = [c.strip().lower() for c in response.headers.get_list("content-encoding", split_commas=True)]
    codings = [c for c in codings if c != "identity"]
    if not codings:
        return None
    if len(codings) != 1 or codings[0] not in SUPPORTED_DECODERS:
        raise ValueError(f"cannot record a stream with content-encoding {codings}")
    # The body reaches the SDK decoded by us, so it must not be decoded again.
    del response.headers["content-encoding"]
    response.headers.pop("content-length", None)
    return SUPPORTED_DECODERS[codings[0]]()


class _Recorder:
    """What the sync and async recorders share: arrival bookkeeping and the exits."""

    def __init__(self, inner: Any, call: Any, decoder: Any) -> None:
        self._inner = inner
        self._call = call
        self._decoder = decoder
        self._pending = b""
        # Garbage collection is an exit too. The callback holds the call, never the recorder.
        call.finalizer = weakref.finalize(self, call.finish, None, None, True)

    def __getattr__(self, name: str) -> Any:
        # Attributes the SDK or httpx2 hang on the transport's stream (an SDK's
        # own stream observer, elapsed time) stay reachable through us.
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._inner, name)

    def _whole(self, chunk: bytes) -> bool:
        """Record *chunk* and say True when it is exactly one whole event, delivered as it is.

        The usual read: one call per event, on the application's thread, so it does the least it
        can. Anything else (part of an event, several, compressed, ``\r`` line ends) goes to
        :meth:`_arrived`.
        """
        if self._decoder is not None or self._pending or not chunk.endswith(b"\n\n") \
                or chunk.find(b"\n\n") != len(chunk) - 2 or b"\r" in chunk:
            return False
        call = self._call
        now = call.last_ns = _now()
        call.events.append(chunk)
        call.offsets.append(now - call.sent_ns)
        if chunk.startswith(call.api.terminal):
            call.completed = True
        return True

    def _arrived(self, chunk: bytes) -> list[bytes]:
        """The events *chunk* completes, recorded with their time of arrival."""
        if self._decoder is not None:
            chunk = b"".join(self._decoder.decode(chunk))
        if self._pending:
            chunk = self._pending + chunk
        events, self._pending = split_events(chunk)
        return self._record(events)

    def _record(self, events: list[bytes]) -> list[bytes]:
        call = self._call
        now = call.last_ns = _now()
        call.events += events
        call.offsets += [now - call.sent_ns] * len(events)
        return events

    def _rest(self) -> list[bytes]:
        """What is left when the body ends or is closed: an event without its blank line, still received."""
        decoder, self._decoder = self._decoder, None
        rest, self._pending = self._pending + (b"".join(decoder.flush()) if decoder is not None else b""), b""
        return self._record([rest]) if rest else []

    def _delivering(self, event: bytes) -> bytes:
        """*event* on its way to the SDK: delivering the provider's last event completes the stream."""
        if event.startswith(self._call.api.terminal):
            self._call.completed = True
        return event

    @contextlib.contextmanager
    def _reading(self, gone: tuple[type[BaseException], ...]) -> Iterator[None]:
        """Around the reading of the body: every way out of it ends the call, once.

        *gone*: the exceptions that mean the reader went away (not a failure of the stream).
        """
        try:
            yield
        except gone:
            self._call.finish(None, None)
            raise
        except BaseException as exc:
            self._rest()
            self._call.finish(exc, None)
            raise
        self._rest()
        self._call.finish(None, True)

    def _closed(self) -> None:
        self._rest()
        self._call.finish(None, None)


class SSERecorder(_Recorder, httpx2.SyncByteStream):
    """A sync response body that records each event on its way to the SDK."""

    def __iter__(self) -> Iterator[bytes]:
        with self._reading((GeneratorExit,)):
            whole = self._whole
            for chunk in self._inner:
                if whole(chunk):
                    yield chunk
                else:
                    yield from map(self._delivering, self._arrived(chunk))
            yield from map(self._delivering, self._rest())

    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            self._closed()


class AsyncSSERecorder(_Recorder, httpx2.AsyncByteStream):
    """The async twin of :class:`SSERecorder`."""

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with self._reading((GeneratorExit, asyncio.CancelledError)):
            whole = self._whole
            async for chunk in self._inner:
                if whole(chunk):
                    yield chunk
                    continue
                for event in self._arrived(chunk):
                    yield self._delivering(event)
            for event in self._rest():
                yield self._delivering(event)

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            self._closed()


def install_recorder(response: httpx2.Response, call: Any, asynchronous: bool) -> None:
    """Route *response*'s body through a recorder that ends *call* when the stream ends."""
    decoder = _content_decoder(response)
    cls = AsyncSSERecorder if asynchronous else SSERecorder
    response.stream = cls(response.stream, call, decoder)


class RecordedStream(httpx2.SyncByteStream, httpx2.AsyncByteStream):
    """A recorded SSE body served back event by event, optionally at the recorded pace.

    ``error`` is raised after the last event when the recorded stream broke
    off, so the SDK fails where it failed while recording.
    """

    def __init__(self, events: Sequence[bytes], offsets_ns: Sequence[int] | None = None,
                 error: BaseException | None = None) -> None:
        self._events = list(events)
        self._offsets = list(offsets_ns) if offsets_ns and len(offsets_ns) == len(self._events) else None
        self._error = error

    def _waits(self) -> Iterator[float]:
        """Seconds to wait before each event (zero when not pacing)."""
        start = _now()
        for offset in self._offsets or [0] * len(self._events):
            yield max(0.0, (start + offset - _now()) / 1e9) if self._offsets else 0.0

    def __iter__(self) -> Iterator[bytes]:
        for event, wait in zip(self._events, self._waits()):
            if wait:
                _sleep(wait)
            yield event
        if self._error is not None:
            raise self._error

    async def __aiter__(self) -> AsyncIterator[bytes]:
        import anyio

        for event, wait in zip(self._events, self._waits()):
            if wait:
                await anyio.sleep(wait)
            yield event
        if self._error is not None:
            raise self._error
