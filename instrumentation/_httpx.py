"""HTTP capture for ``httpx`` and ``httpx2`` (openai 3.x's transport; same design, separate classes).

The patch wraps ``Client._transport_for_url`` / ``AsyncClient._transport_for_url``:
whatever transport the client picks for a request (the default pool, a
mount, a custom or mock transport) is handed back inside a proxy whose
``handle_request`` is the boundary. Everything above it — auth, redirects,
cookies, decoding, ``elapsed`` — runs as usual, for live and for served
responses alike.
"""

from __future__ import annotations

import contextlib
import weakref
from typing import Any, AsyncIterator, Callable, Iterator

from opentelemetry.trace import Span

from tracetape.schemas.events import EventKind

from . import seam
from ._boundary import ask_player
from ._guard import guarded
from ._http import Exchange, describe, failed, library_error, open_span, serve, served_error, served_head, skip

__all__ = ["patches"]


class _Flavor:
    """httpx or httpx2: the module, and stream classes subclassing its own base classes."""

    def __init__(self, module: Any) -> None:
        self.module = module
        self.SyncTee, self.AsyncTee, self.ServedStream = _stream_classes(module)

    def served_response(self, served: seam.Served, request: Any) -> Any:
        head = served_head(served)
        if head is None:
            raise library_error(self.module, served, request=request)
        status, reason, version, pairs = head
        error = library_error(self.module, served, request=request) if served_error(served, status) else None
        return self.module.Response(status, headers=pairs, stream=self.ServedStream(served.response, error),
                                    request=request, extensions={"http_version": f"HTTP/{version}".encode(),
                                                                 "reason_phrase": reason.encode()})

    def recorded(self, response: Any, span: Span | None, tee: type) -> Any:
        """*response*, its body kept for the event of *span* as it is read (as it is without an event)."""
        if span is None:
            return response
        exchange = Exchange(span)
        version = response.extensions.get("http_version", b"HTTP/1.1").decode("ascii", "replace")
        guarded(exchange.head, response.status_code, response.reason_phrase, version.removeprefix("HTTP/"),
                response.headers.raw)
        response.stream = stream = tee(response.stream, exchange)
        weakref.finalize(stream, exchange.finish)
        return response


def _stream_classes(module: Any) -> tuple[type, type, type]:
    class SyncTee(module.SyncByteStream):  # type: ignore[misc, name-defined]
        """The live body, kept for the event as the caller reads it."""

        def __init__(self, inner: Any, exchange: Exchange) -> None:
            self._inner, self._exchange = inner, exchange

        def __iter__(self) -> Iterator[bytes]:
            with _reading(self._exchange):
                yield from map(self._exchange.kept, self._inner)

        def close(self) -> None:
            try:
                self._inner.close()
            finally:
                self._exchange.finish()

    class AsyncTee(module.AsyncByteStream):  # type: ignore[misc, name-defined]
        def __init__(self, inner: Any, exchange: Exchange) -> None:
            self._inner, self._exchange = inner, exchange

        async def __aiter__(self) -> AsyncIterator[bytes]:
            with _reading(self._exchange):
                async for chunk in self._inner:
                    yield self._exchange.kept(chunk)

        async def aclose(self) -> None:
            try:
                await self._inner.aclose()
            finally:
                self._exchange.finish()

    class ServedStream(module.SyncByteStream, module.AsyncByteStream):  # type: ignore[misc, name-defined]
        """A recorded body; raises the recorded error after it when the body broke off."""

        def __init__(self, body: bytes, error: BaseException | None) -> None:
            self._body, self._error = body, error

        def __iter__(self) -> Iterator[bytes]:
            if self._body:
                yield self._body
            if self._error is not None:
                raise self._error

        async def __aiter__(self) -> AsyncIterator[bytes]:
            for chunk in self.__iter__():
                yield chunk

    return SyncTee, AsyncTee, ServedStream


@contextlib.contextmanager
def _reading(exchange: Exchange) -> Iterator[None]:
    """Around the reading of a live body: its end completes the event, anything else ends it with the error."""
    try:
        yield
    except BaseException as exc:
        exchange.finish(exc)
        raise
    exchange.completed()


def _begin(request: Any, body: bytes) -> tuple[str, bytes, Span | None]:
    headers = request.headers.multi_items()
    name, payload = describe(request.method, str(request.url), headers, body)
    return name, payload, guarded(open_span, name, payload, request.method, str(request.url), headers, body)


def _prepare(flavor: _Flavor, request: Any, body: bytes) -> tuple[Span | None, Any]:
    """The event's span, and the response when the player serves this request (``None``: go live)."""
    begun = guarded(_begin, request, body)
    if begun is None:
        return None, None
    name, payload, span = begun
    served = ask_player(span, EventKind.HTTP, name, payload)
    if served is None:
        return span, None
    return None, serve(span, served, lambda: flavor.served_response(served, request))


@contextlib.contextmanager
def _live(span: Span | None) -> Iterator[None]:
    """Around the live exchange: an exception before any response ends the event with it."""
    try:
        yield
    except BaseException as exc:
        failed(span, exc)
        raise


class _SyncTransport:
    """The transport a Client picked for one request, as a boundary."""

    def __init__(self, inner: Any, flavor: _Flavor) -> None:
        self._inner, self._flavor = inner, flavor

    def handle_request(self, request: Any) -> Any:
        if skip(str(request.url)):
            return self._inner.handle_request(request)
        span, served = _prepare(self._flavor, request, request.read())
        if served is not None:
            return served
        with _live(span):
            response = self._inner.handle_request(request)
        return self._flavor.recorded(response, span, self._flavor.SyncTee)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _AsyncTransport:
    def __init__(self, inner: Any, flavor: _Flavor) -> None:
        self._inner, self._flavor = inner, flavor

    async def handle_async_request(self, request: Any) -> Any:
        if skip(str(request.url)):
            return await self._inner.handle_async_request(request)
        span, served = _prepare(self._flavor, request, await request.aread())
        if served is not None:
            return served
        with _live(span):
            response = await self._inner.handle_async_request(request)
        return self._flavor.recorded(response, span, self._flavor.AsyncTee)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def _picking(original: Callable[[Any, Any], Any], flavor: _Flavor, proxy: type) -> Callable[[Any, Any], Any]:
    def _transport_for_url(self: Any, url: Any) -> Any:
        return proxy(original(self, url), flavor)

    _transport_for_url.__wrapped__ = original  # type: ignore[attr-defined]
    return _transport_for_url


def patches(module: Any) -> list[tuple[Any, str, Any]]:
    """The patch list for the httpx-like *module* (``httpx`` or ``httpx2``)."""
    flavor = _Flavor(module)
    return [
        (module.Client, "_transport_for_url", _picking(module.Client._transport_for_url, flavor, _SyncTransport)),
        (module.AsyncClient, "_transport_for_url",
         _picking(module.AsyncClient._transport_for_url, flavor, _AsyncTransport)),
    ]
