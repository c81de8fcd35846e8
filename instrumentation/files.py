"""File reads and writes of the agent, under configured roots.

Patched: ``builtins.open`` (which is ``io.open``), so ``pathlib.Path``'s
``open``/``read_text``/``read_bytes``/``write_text``/``write_bytes``,
``codecs.open`` and most file helpers are covered too. Not covered:
``os.open``/``os.read``, memory maps, and modules that bound ``open`` before
``instrument()`` (``tokenize``, logging handlers created earlier).

- A read (mode ``r``/``rb``) is one ``file_read`` event at open: ``request``
  = ``{"path": <relative to its root>, "mode"}``, ``response`` = the file's
  bytes. Replayed, it is served from the recording — an in-memory file over
  the recorded bytes; the disk is not touched.
- A write (any of ``w``, ``a``, ``x``, ``+``) is one ``file_write`` event at
  CLOSE, when its effect is known: ``before`` = the bytes before the open (if
  the file existed), ``response`` = the bytes after, ``request`` = path, mode,
  size and SHA-256 of the bytes after. Replayed, the write happens for real
  (its effects are what is being reproduced) and the player compares the
  request, so different written bytes are a divergence at that step.
- An open that fails records the error; replayed, the same error is raised.

Only files under the roots are recorded (default: the working directory at
``instrument()``), never the interpreter's own (``sys.prefix``, site-packages,
the venv), ``/proc``, ``/dev``, ``/sys`` or tracetape's data directory. Above
the size cap a file's bytes are not kept, only its size and hash (with a
warning); such a read goes to the disk during replay. Calls outside runs,
from tracetape itself or from infrastructure (see ``_scope``) go straight to
the original ``open``.
"""

from __future__ import annotations

import builtins
import contextvars
import functools
import io
import logging
import os
import time
from typing import Any, Collection, Iterable

from opentelemetry.instrumentation.instrumentor import BaseInstrumentor
from opentelemetry.trace import SpanKind

from tracetape.schemas.attributes import (
    FILE_PATH, FILE_MODE, FILE_SIZE, FILE_HASH_ONLY, FILE_CREATED, FILE_ERRNO, FILE_SHA256,
)
from tracetape.schemas import attributes as A
from tracetape.schemas.config import FILE_MAX_BYTES, FILE_ROOTS, setting
from tracetape.schemas.events import EventKind

from . import seam
from ._boundary import ask_player, finish, record_error, recorded_error, suppressed, tracer
from ._file_io import open_tracked, plain_mode, replayed_file
from ._file_scope import FileScope, Snapshot, snapshot
from ._blobs import sha256_hex as _sha256
from ._guard import guarded
from ._patches import PatchSet
from ._payload import attach, to_json_bytes
from ._scope import caller_excluded, open_runs, task_slot
from .redaction import redact

__all__ = ["FilesInstrumentor", "configure", "FILE_ROOTS", "FILE_MAX_BYTES"]

_log = logging.getLogger(__name__)

BEFORE = "before"

_real_open = io.open
_runs = open_runs()
_scope: FileScope | None = None


def configure(roots: Iterable[str] | None = None, max_bytes: int | None = None) -> None:
    """Which directories are recorded and the largest file kept whole (argument, env var, default)."""
    global _scope
    configured = setting(FILE_ROOTS, os.pathsep.join(roots) if roots is not None else None)
    _scope = FileScope([r for r in configured.split(os.pathsep) if r] or [os.getcwd()],
                       setting(FILE_MAX_BYTES, max_bytes))


@functools.wraps(_real_open)
def _open(file: Any, mode: str = "r", buffering: int = -1, encoding: Any = None, errors: Any = None,
          newline: Any = None, closefd: bool = True, opener: Any = None) -> Any:
    if not _runs:
        return _real_open(file, mode, buffering, encoding, errors, newline, closefd, opener)
    return _recorded_open(file, mode, buffering, encoding, errors, newline, closefd, opener)


def _recorded_open(file: Any, mode: Any, buffering: int, encoding: Any, errors: Any, newline: Any, closefd: bool,
                   opener: Any) -> Any:
    args = (file, mode, buffering, encoding, errors, newline, closefd, opener)
    if caller_excluded(2):
        return _real_open(*args)
    target = guarded(_target, file, mode, buffering, encoding, errors, newline)
    if target is None:
        return _real_open(*args)
    path, relative = target
    if "r" in mode and "+" not in mode:
        return _read(path, relative, args)
    return _write(path, relative, args)


def _target(file: Any, mode: Any, buffering: int, encoding: Any, errors: Any, newline: Any
            ) -> tuple[str, str] | None:
    """(absolute path, path relative to its root) of a file open to record, else ``None``.

    Cheapest tests first: most files a run opens are not under a root.
    """
    scope = _scope
    if scope is None or isinstance(file, int) or task_slot() is None:
        return None
    name = os.fsdecode(os.fspath(file))
    path = os.path.normpath(name) if os.path.isabs(name) else os.path.abspath(name)
    relative = scope.relative(path)
    if relative is None or suppressed() or not plain_mode(mode, buffering, encoding, errors, newline):
        return None
    return path, relative


def _request(relative: str, mode: str, **extra: Any) -> bytes:
    return to_json_bytes({"path": relative, "mode": mode, **extra})


def _start(name: str, kind: EventKind, request: bytes, relative: str, mode: str, start_time: int | None = None
           ) -> Any:
    span = tracer().start_span(name, kind=SpanKind.INTERNAL, start_time=start_time, attributes={
        A.EVENT_KIND: kind.value, FILE_PATH: relative, FILE_MODE: mode})
    attach(span, seam.REQUEST, request)
    return span


def _failed_open(span: Any, exc: BaseException) -> None:
    if isinstance(exc, OSError) and exc.errno is not None:
        span.set_attribute(FILE_ERRNO, exc.errno)
    record_error(span, exc)
    span.end()


def _served_error(served: seam.Served, file: Any) -> BaseException:
    """The recorded failure again: an ``OSError`` subclass with its errno, else by name."""
    cls = getattr(builtins, served.error_type, None)
    code = str(served.attributes.get(FILE_ERRNO, "") or "")
    if isinstance(cls, type) and issubclass(cls, OSError) and code.isdigit():
        return cls(int(code), os.strerror(int(code)), os.fsdecode(os.fspath(file)))
    return recorded_error(served)


# -- reads ------------------------------------------------------------------

def _read(path: str, relative: str, args: tuple) -> Any:
    file, mode = args[0], args[1]
    request = _request(relative, mode)
    name = f"read {relative}"
    span = guarded(_start, name, EventKind.FILE_READ, request, relative, mode)
    served = ask_player(span, EventKind.FILE_READ, name, request)
    expected = ""
    if served is not None:
        if served.error_type:
            if span is not None:
                guarded(_finish_served_read, span, served)
            raise _served_error(served, file)
        expected = str(served.attributes.get(FILE_SHA256, "") or "")
        if not expected:
            if span is not None:
                guarded(_finish_served_read, span, served)
            return replayed_file(served.response, file, mode, args[3], args[4], args[5])
        # Recorded over the size cap: only its hash was kept, so the disk answers, checked against it.
    try:
        handle = _real_open(*args)
    except BaseException as exc:
        if span is not None:
            guarded(_failed_open, span, exc)
        raise
    if span is not None:
        guarded(_finish_read, span, path, expected)
    return handle


def _finish_read(span: Any, path: str, expected_sha256: str) -> None:
    found = snapshot(path, _max_bytes())
    _record_content(span, seam.RESPONSE, found, path)
    if expected_sha256 and (found.sha256 or _sha256(found.data or b"")) != expected_sha256:
        _log.warning("tracetape replay: %s differs from the recording (it was only hashed: over the size cap)",
                     path)
    span.end()


def _finish_served_read(span: Any, served: seam.Served) -> None:
    if served.error_type:
        record_error(span, error_type=served.error_type, message=served.error_message)
        span.end()
    else:
        span.set_attribute(FILE_SIZE, len(served.response))
        finish(span, served.response, content_type="application/octet-stream")


def _attribute(name: str, role: str) -> str:
    """Per-payload file attributes: plain for the response (the content), suffixed for ``before``."""
    return name if role == seam.RESPONSE else f"{name}.{role}"


def _record_content(span: Any, role: str, found: Snapshot, path: str) -> None:
    """The file's bytes as payload *role*, or — above the cap — only its size and hash, with a warning."""
    span.set_attribute(_attribute(FILE_SIZE, role), found.size)
    if found.data is not None:
        attach(span, role, found.data, "application/octet-stream")
        return
    span.set_attribute(_attribute(FILE_HASH_ONLY, role), True)
    span.set_attribute(_attribute(FILE_SHA256, role), found.sha256)
    _log.warning("tracetape: %s is %d bytes, over the %d-byte cap: only its hash is recorded", path, found.size,
                 _max_bytes())


def _max_bytes() -> int:
    return _scope.max_bytes if _scope is not None else 0


# -- writes -----------------------------------------------------------------

class _Write:
    """A file open for writing: what it held before, and where to record it on close."""

    __slots__ = ("path", "relative", "mode", "before", "context", "started")

    def __init__(self, path: str, relative: str, mode: str) -> None:
        self.path = path
        self.relative = relative
        self.mode = mode
        self.before = snapshot(path, _max_bytes())  # before open() truncates it
        # The event is recorded at close in the context of the open (run, task, parent span), wherever
        # the close happens (garbage collection included).
        self.context = contextvars.copy_context()
        self.started = time.time_ns()

    def closed(self) -> None:
        self.context.run(_record_write, self)


def _write(path: str, relative: str, args: tuple) -> Any:
    mode = args[1]
    write = guarded(_Write, path, relative, mode)
    if write is None:
        return _real_open(*args)
    try:
        return open_tracked(*args, on_close=write.closed)
    except OSError as exc:
        # No write happened: the event is the failed open, at this point (replay compares the request).
        request = _request(relative, mode)
        name = f"write {relative}"
        span = guarded(_start, name, EventKind.FILE_WRITE, request, relative, mode)
        ask_player(span, EventKind.FILE_WRITE, name, request)
        if span is not None:
            guarded(_failed_open, span, exc)
        raise
    except Exception:  # noqa: BLE001 - our mirror of open() failed where open() may not: let open() decide
        _log.debug("tracetape: recorded open of %s failed; opening unrecorded", path, exc_info=True)
        return _real_open(*args)


def _record_write(write: _Write) -> None:
    after = guarded(snapshot, write.path, _max_bytes())
    if after is None:
        return
    if after.data is not None:
        digest = guarded(_redacted_digest, after.data)
    else:
        digest = after.sha256
    request = _request(write.relative, write.mode, sha256=digest, size=after.size)
    name = f"write {write.relative}"
    span = guarded(_start, name, EventKind.FILE_WRITE, request, write.relative, write.mode, write.started)
    ask_player(span, EventKind.FILE_WRITE, name, request)
    if span is not None:
        guarded(_finish_write, span, write, after)


def _redacted_digest(data: bytes) -> str:
    # What the response payload's hash will be: the request then holds no hash of a secret.
    return _sha256(redact(seam.RESPONSE, data))


def _finish_write(span: Any, write: _Write, after: Snapshot) -> None:
    if not write.before.exists:
        span.set_attribute(FILE_CREATED, True)
    else:
        _record_content(span, BEFORE, write.before, write.path)
    _record_content(span, seam.RESPONSE, after, write.path)
    span.end()


class FilesInstrumentor(BaseInstrumentor):
    """Registered as the ``tracetape_files`` opentelemetry_instrumentor entry point.

    ``instrument(roots=[...], max_bytes=N)`` overrides ``TRACETAPE_FILE_ROOTS`` / ``TRACETAPE_FILE_MAX_BYTES``.
    """

    # Class-level default: BaseInstrumentor is a singleton whose __init__ runs on every construction.
    _patches: PatchSet | None = None

    def instrumentation_dependencies(self) -> Collection[str]:
        return ()

    def _instrument(self, **kwargs: Any) -> None:
        configure(kwargs.get("roots"), kwargs.get("max_bytes"))
        self._patches = PatchSet([(builtins, "open", _open), (io, "open", _open)])
        self._patches.apply()

    def _uninstrument(self, **kwargs: Any) -> None:
        if self._patches is not None:
            self._patches.undo()
            self._patches = None

