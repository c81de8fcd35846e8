"""HTTP capture for ``requests``, at ``HTTPAdapter.send``: one call per hop
(the Session above it handles redirects, cookies and hooks, for live and
served responses alike).

The body is tapped where urllib3 reads it off the connection before content
decoding (``_fp_read`` for plain bodies, ``_handle_chunk`` for chunked
ones), so the recording is the body as sent and replay lets urllib3 decode
it again. A streamed response (``stream=True``) is tapped as the caller
reads it. With an urllib3 that lacks those methods the body is not captured
(the span says so) and nothing else changes.
"""

from __future__ import annotations

import functools
import io
import weakref
from typing import Any, Callable

from opentelemetry.trace import Span

from tracetape.schemas.attributes import HTTP_RESPONSE_BODY_NOT_CAPTURED as BODY_UNTAPPED
from tracetape.schemas.events import EventKind

from . import seam
from ._boundary import ask_player
from ._guard import guarded
from ._http import Exchange, describe, failed, library_error, open_span, serve, served_head, skip

__all__ = ["patches", "BODY_UNTAPPED"]



def _body(request: Any) -> bytes:
    """The exact request body; a file or iterator body is read once and put back as bytes."""
    body = request.body
    if body is None:
        return b""
    if isinstance(body, str):
        return body.encode("iso-8859-1")  # what http.client sends for a str body
    if isinstance(body, (bytes, bytearray, memoryview)):
        return bytes(body)
    chunks = iter(body.read, b"") if hasattr(body, "read") else body
    data = b"".join(c.encode("utf-8") if isinstance(c, str) else bytes(c) for c in chunks)
    request.body = data
    return data


def _served_response(adapter: Any, request: Any, served: seam.Served) -> Any:
    import requests.exceptions
    from urllib3 import HTTPResponse
    from urllib3._collections import HTTPHeaderDict

    head = served_head(served)
    if head is None:
        raise library_error(requests.exceptions, served, request=request)
    status, reason, version, pairs = head
    headers = HTTPHeaderDict()
    for name, value in pairs:
        headers.add(name, value)
    raw = HTTPResponse(body=io.BytesIO(served.response), headers=headers, status=status, reason=reason,
                       version=int(version.replace(".", "")) if version.replace(".", "").isdigit() else 11,
                       preload_content=False, decode_content=True, enforce_content_length=False,
                       request_method=request.method, request_url=request.url)
    return adapter.build_response(request, raw)


def _complete(raw: Any) -> bool:
    original = getattr(raw, "_original_response", None)
    return original is None or original.isclosed()


def _tap(raw: Any, exchange: Exchange) -> None:
    """Keep the body bytes urllib3 reads for this response; end the event when it is released or closed."""
    readers = [name for name in ("_fp_read", "_handle_chunk") if callable(getattr(raw, name, None))]
    if len(readers) < 2:
        exchange.span.set_attribute(BODY_UNTAPPED, True)
    else:
        for name in readers:
            setattr(raw, name, _keeping(getattr(raw, name), exchange))
    for name in ("release_conn", "close"):
        setattr(raw, name, _ending(getattr(raw, name), raw, exchange))
    weakref.finalize(raw, exchange.finish)


def _keeping(read: Callable[..., bytes], exchange: Exchange) -> Callable[..., bytes]:
    @functools.wraps(read)
    def tapped(*args: Any, **kwargs: Any) -> bytes:
        data = read(*args, **kwargs)
        exchange.keep(data)
        return data

    return tapped


def _ending(method: Callable[[], None], raw: Any, exchange: Exchange) -> Callable[[], None]:
    @functools.wraps(method)
    def tapped() -> None:
        exchange.eof = exchange.eof or _complete(raw)
        try:
            method()
        finally:
            exchange.finish()

    return tapped


def _recorded(response: Any, span: Span) -> Any:
    exchange = Exchange(span)
    raw = response.raw
    version = str(getattr(raw, "version", 11) or 11)
    guarded(exchange.head, response.status_code, response.reason or "",
            f"{version[0]}.{version[1:]}" if len(version) > 1 else version, raw.headers.items())
    guarded(_tap, raw, exchange)
    return response


def _send(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def send(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        if skip(request.url or ""):
            return original(self, request, *args, **kwargs)
        body = guarded(_body, request)
        if body is None:
            return original(self, request, *args, **kwargs)
        described = guarded(describe, request.method, request.url, request.headers.items(), body)
        if described is None:
            return original(self, request, *args, **kwargs)
        name, payload = described
        span = guarded(open_span, name, payload, request.method, request.url, request.headers.items(), body)
        served = ask_player(span, EventKind.HTTP, name, payload)
        if served is not None:
            return serve(span, served, lambda: _served_response(self, request, served))
        try:
            response = original(self, request, *args, **kwargs)
        except BaseException as exc:
            failed(span, exc)
            raise
        return response if span is None else _recorded(response, span)

    return send


def patches(adapters: Any) -> list[tuple[Any, str, Any]]:
    """The patch list, given the ``requests.adapters`` module."""
    return [(adapters.HTTPAdapter, "send", _send(adapters.HTTPAdapter.send))]
