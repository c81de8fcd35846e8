"""What every boundary patch (MCP, HTTP, subprocess) does the same way.

Each boundary event follows the seam contract (see ``seam``): a span, the
canonical ``request`` bytes, the player asked before the live call, the
``response`` bytes after, and the error — if any — as ``error.type`` plus
the span status. These helpers keep that shape identical across patches.
The player is asked outside ``guarded``: its divergence error is the replay's
answer to the user and must reach them; everything else here is our own
capture code and runs guarded by the callers.
"""

from __future__ import annotations

import base64
import builtins
from typing import Any, Mapping

from opentelemetry import trace
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from tracetape.schemas import attributes as A
from tracetape.schemas.errors import RecordedToolError
from tracetape.schemas.events import EventKind

from . import redaction, seam
from ._guard import guarded
from ._payload import attach
from ._processor import current_stamp

__all__ = ["suppressed", "tracer", "use_provider", "start", "serve", "ask_player", "finish", "record_error",
           "pack_bytes", "unpack_bytes", "recorded_error"]

# ``trace.get_tracer()`` costs tens of microseconds (a warnings filter and a scope object in the SDK), so
# every event uses one tracer: the instrumented provider's own while instrumented, else a proxy that
# follows the global provider once one is set (OTel lets a process set it only once).
_PROXY = trace.get_tracer("tracetape")
_tracer: trace.Tracer = _PROXY


def tracer() -> trace.Tracer:
    """The tracer every tracetape event is made with."""
    return _tracer


def use_provider(provider: trace.TracerProvider | None) -> None:
    """Make events with *provider*'s tracer (``instrument()``), or the global provider's (``None``)."""
    global _tracer
    _tracer = provider.get_tracer("tracetape") if provider is not None else _PROXY


def suppressed() -> bool:
    """True inside our own I/O (or any code that asked OTel to suppress instrumentation)."""
    return not is_instrumentation_enabled()


def start(name: str, kind: EventKind, request: bytes, attributes: Mapping[str, Any],
          span_kind: SpanKind = SpanKind.CLIENT) -> Span:
    start_time, stamp = current_stamp()
    span = _tracer.start_span(name, kind=span_kind, attributes={A.EVENT_KIND: kind.value, **attributes, **stamp},
                              start_time=start_time)
    attach(span, seam.REQUEST, request)
    return span


def serve(kind: EventKind, name: str, request: bytes, *, redacted: bool = False) -> seam.Served | None:
    """Ask the player, if one is installed, with the request redacted as it was recorded.

    The recording holds the redacted request, so a call is compared in that form, or a recording
    with a secret (or anything a user's rule removes) in its request would never match again.
    Recording pays nothing for it: without a player, nothing is redacted here. *redacted*: the
    caller recorded the request already redacted (a tool's arguments), so it is not scanned twice.
    """
    if seam.active() is None:
        return None
    return seam.serve(kind, name, request if redacted else redaction.redact(seam.REQUEST, request))


def ask_player(span: Span | None, kind: EventKind, name: str, request: bytes, *,
               redacted: bool = False) -> seam.Served | None:
    """The recorded outcome while replaying, else ``None``; a divergence ends the span and propagates."""
    try:
        return serve(kind, name, request, redacted=redacted)
    except BaseException as exc:
        if span is not None:
            guarded(finish, span, None, exc)
        raise


def record_error(span: Span, exc: BaseException | None = None, *, error_type: str = "",
                 message: str = "") -> None:
    if exc is not None:
        span.record_exception(exc)
        error_type, message = type(exc).__qualname__, f"{type(exc).__name__}: {exc}"
    span.set_status(Status(StatusCode.ERROR, message))
    span.set_attribute(A.ERROR_TYPE, error_type)


def finish(span: Span, response: bytes | None, error: BaseException | None = None,
           content_type: str = "application/json") -> None:
    """Attach the response, record the error, and end the span — ended even if the rest fails."""
    try:
        if response is not None:
            attach(span, seam.RESPONSE, response, content_type)
        if error is not None:
            record_error(span, error)
    finally:
        span.end()


def pack_bytes(data: bytes | str | None) -> dict[str, str] | None:
    """Bytes inside a JSON payload: readable text when they are UTF-8, base64 otherwise; exact either way."""
    if data is None:
        return None
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
    try:
        return {"utf8": raw.decode("utf-8")}
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(raw).decode("ascii")}


def unpack_bytes(packed: Mapping[str, str] | None, text: bool) -> bytes | str | None:
    """What :func:`pack_bytes` packed, as ``str`` when the caller reads text, else ``bytes``."""
    if packed is None:
        return None
    raw = packed["utf8"].encode("utf-8") if "utf8" in packed else base64.b64decode(packed["base64"])
    return raw.decode("utf-8", "surrogatepass") if text else raw


def recorded_error(served: seam.Served) -> BaseException:
    """A recorded error no patch-specific rule rebuilt: the builtin type by name, else RecordedToolError."""
    cls = getattr(builtins, served.error_type, None)
    if isinstance(cls, type) and issubclass(cls, Exception):
        try:
            return cls(served.error_message)
        except TypeError:
            pass
    return RecordedToolError(served.error_type, served.error_message)
