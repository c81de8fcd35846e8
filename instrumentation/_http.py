"""The part of HTTP capture every client library shares: redaction, the canonical
request, the response side of an event, and rebuilding what a replay serves.

The shape of an ``http`` event is described in ``http``.
"""

from __future__ import annotations

import hashlib
import json
import threading
from typing import Any, Callable, Iterable, TypeVar
from urllib.parse import unquote, urlsplit, urlunsplit

from opentelemetry.trace import Span

from tracetape.schemas.attributes import HTTP_REQUEST_HEADERS as REQUEST_HEADERS
from tracetape.schemas.attributes import HTTP_RESPONSE_BODY_TRUNCATED as BODY_TRUNCATED
from tracetape.schemas.attributes import HTTP_RESPONSE_HEADERS as RESPONSE_HEADERS
from tracetape.schemas.attributes import HTTP_RESPONSE_REASON as REASON
from tracetape.schemas import config
from tracetape.schemas.events import EventKind

from . import seam
from ._boundary import finish, record_error, recorded_error, start, suppressed
from ._guard import guarded
from ._nesting import inside_model_call
from ._payload import REDACTED, attach, redact_headers, to_json_bytes

__all__ = ["REQUEST_BODY", "RESPONSE_HEADERS", "REQUEST_HEADERS", "redact_url", "describe", "open_span", "Exchange",
           "served_head", "served_error", "library_error", "skip", "configure", "serve", "failed"]

T = TypeVar("T")

REQUEST_BODY = "request_body"  # payload role: the exact request body bytes
STATUS = "http.response.status_code"
PROTOCOL = "network.protocol.version"

_INLINE_BODY = 16 * 1024
_KEEP_LIMIT = 64 * 1024 * 1024
# Headers that differ between two runs of the same call: not part of the fingerprint.
_VOLATILE = frozenset({
    "date", "user-agent", "traceparent", "tracestate", "baggage", "x-request-id", "request-id",
    "idempotency-key", "x-amz-date", "x-amz-security-token", "content-length", "host", "accept-encoding",
    "connection", "cookie",
})
_SECRET_PARAM_WORDS = ("key", "token", "secret", "password", "passwd", "signature", "sig", "auth", "credential",
                       "session", "code")


def _secret_param(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in _SECRET_PARAM_WORDS)


def redact_url(url: str) -> str:
    """The URL with its password and secret-looking query values replaced, the rest byte for byte."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        netloc = f"{userinfo.split(':', 1)[0]}:{REDACTED}@{host}" if ":" in userinfo else netloc
    query = "&".join(
        f"{pair.split('=', 1)[0]}={REDACTED}" if "=" in pair and _secret_param(unquote(pair.split("=", 1)[0]))
        else pair
        for pair in parts.query.split("&")
    ) if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _redacted_pairs(pairs: Iterable[tuple[Any, Any]]) -> list[list[str]]:
    out = []
    for name, value in pairs:
        name = name.decode("latin-1") if isinstance(name, bytes) else str(name)
        value = value.decode("latin-1") if isinstance(value, bytes) else str(value)
        out.append([name, redact_headers([(name, value)])[name.lower()]])
    return out


def _as_bytes(body: Any) -> bytes:
    if body is None:
        return b""
    return body.encode("utf-8") if isinstance(body, str) else bytes(body)


def describe(method: str, url: str, headers: Iterable[tuple[Any, Any]], body: bytes) -> tuple[str, bytes]:
    """The event's name and its canonical request bytes."""
    parts = urlsplit(url)
    request: dict[str, Any] = {
        "method": method.upper(),
        "url": redact_url(url),
        "headers": {k: v for k, v in redact_headers(_redacted_pairs(headers)).items() if k not in _VOLATILE},
        "body_size": len(body),
    }
    if body:
        try:
            text = body.decode("utf-8") if len(body) <= _INLINE_BODY else None
        except UnicodeDecodeError:
            text = None
        if text is not None:
            request["body"] = text
        else:
            request["body_sha256"] = hashlib.sha256(body).hexdigest()
    return f"{method.upper()} {parts.netloc.rsplit('@', 1)[-1]}{parts.path or '/'}", to_json_bytes(request)


def open_span(name: str, request: bytes, method: str, url: str, headers: Iterable[tuple[Any, Any]], body: bytes) -> Span:
    parts = urlsplit(url)
    attributes: dict[str, Any] = {
        "http.request.method": method.upper(),
        "url.full": redact_url(url),
        "server.address": parts.hostname or "",
        REQUEST_HEADERS: json.dumps(redact_headers(_redacted_pairs(headers)), sort_keys=True),
    }
    if parts.port:
        attributes["server.port"] = parts.port
    span = start(name, EventKind.HTTP, request, attributes)
    if body:
        attach(span, REQUEST_BODY, body, "application/octet-stream")
    return span


class Exchange:
    """The response side of one event: head first, then the body as it is read; ends once.

    The body is kept up to 64 MiB (beyond that the span says it was
    truncated); an event closed before the end of its body says so too.
    """

    def __init__(self, span: Span) -> None:
        self.span = span
        self.parts: list[bytes] = []
        self.size = 0
        self.eof = False
        self._done = False
        self._lock = threading.Lock()

    def head(self, status: int, reason: str, version: str, pairs: Iterable[tuple[Any, Any]]) -> None:
        self.span.set_attribute(STATUS, status)
        self.span.set_attribute(REASON, reason)
        self.span.set_attribute(PROTOCOL, version)
        self.span.set_attribute(RESPONSE_HEADERS, json.dumps(_redacted_pairs(pairs)))
        if status >= 400:  # OTel HTTP client convention: error.type is the status code
            record_error(self.span, error_type=str(status), message=f"HTTP {status} {reason}".strip())

    def keep(self, chunk: bytes) -> None:
        if not chunk:
            return
        self.size += len(chunk)
        if self.size <= _KEEP_LIMIT:
            self.parts.append(bytes(chunk))

    def kept(self, chunk: bytes) -> bytes:
        """*chunk*, kept (for a body read as a stream)."""
        self.keep(chunk)
        return chunk

    def completed(self) -> None:
        """The whole body was read."""
        self.eof = True
        self.finish()

    def finish(self, error: BaseException | None = None) -> None:
        with self._lock:
            if self._done:
                return
            self._done = True
        if self.size > _KEEP_LIMIT or not (self.eof or error):
            guarded(self.span.set_attribute, BODY_TRUNCATED, True)
        guarded(finish, self.span, b"".join(self.parts), error, "application/octet-stream")


def served_head(served: seam.Served) -> tuple[int, str, str, list[tuple[str, str]]] | None:
    """Status, reason, protocol and headers of a served exchange; ``None`` if it failed before any response."""
    status = served.attributes.get(STATUS)
    if not status:
        return None
    pairs = [(str(k), str(v)) for k, v in json.loads(served.attributes.get(RESPONSE_HEADERS) or "[]")]
    return int(status), served.attributes.get(REASON, ""), served.attributes.get(PROTOCOL, "1.1"), pairs


def _error_message(served: seam.Served) -> str:
    prefix = f"{served.error_type.rsplit('.', 1)[-1]}: "
    return served.error_message[len(prefix):] if served.error_message.startswith(prefix) else served.error_message


def library_error(module: Any, served: seam.Served, **kwargs: Any) -> BaseException:
    """The recorded exception as the library's own class when it has one of that name."""
    cls = getattr(module, served.error_type.rsplit(".", 1)[-1], None)
    if isinstance(cls, type) and issubclass(cls, BaseException):
        for attempt in (kwargs, {}):
            try:
                return cls(_error_message(served), **attempt)
            except TypeError:
                continue
    return recorded_error(served)


def served_error(served: seam.Served, status: int) -> bool:
    """Whether a served exchange broke off with an error after its head (not just an error status)."""
    return bool(served.error_type) and served.error_type != str(status)


def _finish_served(span: Span, served: seam.Served) -> None:
    """A served exchange records what it was served, so the replay run holds what the code saw."""
    for key in (STATUS, REASON, PROTOCOL, RESPONSE_HEADERS):
        if key in served.attributes:
            span.set_attribute(key, int(served.attributes[key]) if key == STATUS else served.attributes[key])
    finish(span, served.response, None, "application/octet-stream")


def serve(span: Span | None, served: seam.Served, rebuild: Callable[[], T]) -> T:
    """The library's response rebuilt from *served* (or the recorded error raised), ending the event."""
    try:
        response = rebuild()
    except BaseException as exc:
        failed(span, exc)
        raise
    if span is not None:
        guarded(_finish_served, span, served)
    return response


def failed(span: Span | None, exc: BaseException) -> None:
    """End the event of an exchange that raised before any response."""
    if span is not None:
        guarded(finish, span, None, exc)


_collector_netlocs: frozenset[str] = frozenset()


def configure() -> None:
    """Remember where our collector is, so our own traffic to it is never recorded."""
    global _collector_netlocs
    endpoint = config.setting(config.OTLP_ENDPOINT)
    _collector_netlocs = frozenset({urlsplit(endpoint).netloc if "://" in endpoint else endpoint})


def skip(url: str) -> bool:
    """Not an event: our own I/O, part of a model call, or traffic to the collector."""
    return suppressed() or inside_model_call() or urlsplit(url).netloc.rsplit("@", 1)[-1] in _collector_netlocs
