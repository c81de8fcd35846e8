"""``subprocess.Popen`` used directly, as an event that ends when its exit code is seen.

The output is kept as the program reads it — from ``communicate()`` or
straight from the pipes, through :class:`_Tee` — and a replayed Popen is a
finished process that never ran, whose pipes hold what was recorded.
"""

from __future__ import annotations

import functools
import io
import json
import subprocess
import threading
import weakref
from typing import Any, Callable, Mapping

from opentelemetry.trace import Span

from tracetape.schemas.events import EventKind

from . import seam
from ._boundary import ask_player, finish, suppressed, unpack_bytes
from ._guard import guarded
from ._links import child_link
from ._nesting import inside_model_call
from ._process_events import (KEEP_LIMIT, add_link, bind, current, describe, finish_failed, finish_process,
                              is_text, open_span, rebuilt_error, scope)

__all__ = ["patches"]


class _Tracked:
    """A live Popen's event: ended once, by the first of communicate/wait/poll/collection."""

    __slots__ = ("span", "depth", "outputs", "kept", "_done", "_lock")

    def __init__(self, span: Span) -> None:
        self.span = span
        self.depth = 0  # > 0 while communicate() runs: its own reads and wait() are not the user's
        self.outputs: dict[str, list[Any]] = {"stdout": [], "stderr": []}  # read by the user through _Tee
        self.kept = 0
        self._done = False
        self._lock = threading.Lock()

    def keep(self, stream: str, data: Any) -> None:
        if data and self.depth == 0 and not self._done:
            self.kept += len(data)
            if self.kept <= KEEP_LIMIT:
                self.outputs[stream].append(data)

    def end(self, returncode: int | None, stdout: Any = None, stderr: Any = None) -> None:
        with self._lock:
            if self._done:
                return
            self._done = True
        guarded(finish_process, self.span, returncode, _joined(self.outputs["stdout"], stdout),
                _joined(self.outputs["stderr"], stderr), self.kept > KEEP_LIMIT)


def _joined(parts: list[Any], rest: Any) -> Any:
    if rest is not None:
        parts = [*parts, rest]
    if not parts:
        return None
    return ("" if isinstance(parts[0], str) else b"").join(parts)


class _Tee:
    """``p.stdout``/``p.stderr`` of a recorded Popen: what the user reads passes through and is kept."""

    def __init__(self, stream: Any, tracked: _Tracked, name: str) -> None:
        self._stream, self._tracked, self._name = stream, tracked, name

    def _keep(self, data: Any) -> Any:
        self._tracked.keep(self._name, data)
        return data

    def read(self, *args: Any) -> Any:
        return self._keep(self._stream.read(*args))

    def read1(self, *args: Any) -> Any:
        return self._keep(self._stream.read1(*args))

    def readline(self, *args: Any) -> Any:
        return self._keep(self._stream.readline(*args))

    def readlines(self, *args: Any) -> list[Any]:
        lines = self._stream.readlines(*args)
        for line in lines:
            self._keep(line)
        return lines

    def readinto(self, buffer: Any) -> int:
        count = self._stream.readinto(buffer)
        self._keep(bytes(memoryview(buffer)[:count or 0]))
        return count

    def __iter__(self) -> "_Tee":
        return self

    def __next__(self) -> Any:
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    def __enter__(self) -> "_Tee":
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stream.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _become_recorded(popen: subprocess.Popen, arguments: Mapping[str, Any], served: seam.Served) -> None:
    """Turn *popen* into a finished process that never ran; raise the recorded error instead, if any."""
    response = json.loads(served.response) if served.response else {}
    if served.error_type:
        raise rebuilt_error(served, response, arguments["args"])
    text = is_text(arguments)
    piped = {name: arguments.get(name) == subprocess.PIPE for name in ("stdin", "stdout", "stderr")}
    stdout = unpack_bytes(response.get("stdout"), text) if piped["stdout"] else None
    stderr = unpack_bytes(response.get("stderr"), text) if piped["stderr"] else None
    empty: Any = "" if text else b""
    stream = io.StringIO if text else io.BytesIO
    popen.args = arguments["args"]
    popen.pid = None  # type: ignore[assignment]  # no process: nothing to signal by mistake
    popen.returncode = response.get("returncode")
    popen.text_mode = text  # type: ignore[attr-defined]
    popen.encoding, popen.errors = arguments.get("encoding"), arguments.get("errors")
    popen.stdin = stream() if piped["stdin"] else None  # type: ignore[assignment]
    popen.stdout = stream(stdout if stdout is not None else empty) if piped["stdout"] else None  # type: ignore
    popen.stderr = stream(stderr if stderr is not None else empty) if piped["stderr"] else None  # type: ignore
    popen._child_created = False  # type: ignore[attr-defined]
    popen._waitpid_lock = threading.Lock()  # type: ignore[attr-defined]
    popen._sigint_wait_secs = 0  # type: ignore[attr-defined]
    popen._communication_started = False  # type: ignore[attr-defined]
    popen._input = None  # type: ignore[attr-defined]
    popen._tracetape_replayed = True  # type: ignore[attr-defined]


def _popen_init(original: Callable[..., None]) -> Callable[..., None]:
    @functools.wraps(original)
    def __init__(self: subprocess.Popen, *args: Any, **kwargs: Any) -> None:
        if suppressed() or inside_model_call():  # an SDK's own helper process is part of its model call
            return original(self, *args, **kwargs)
        bound = guarded(bind, args, kwargs)
        if bound is None:
            return original(self, *args, **kwargs)
        if scope.get():  # run() or an asyncio transport owns the event; only pass the run on
            guarded(add_link, bound.arguments)
            return original(self, *bound.args[1:], **bound.kwargs)
        described = guarded(describe, "popen", bound.arguments)
        if described is None:
            return original(self, *bound.args[1:], **bound.kwargs)
        name, request = described
        span = guarded(open_span, name, request, bound.arguments)
        served = ask_player(span, EventKind.SUBPROCESS, name, request)
        if served is not None:
            guarded(child_link)  # the child task the live call would have taken, so numbering matches
            try:
                _become_recorded(self, bound.arguments, served)
            except BaseException as exc:
                finish_failed(span, exc)
                raise
            guarded(finish, span, served.response)
            return None
        with current(span):
            guarded(add_link, bound.arguments)
            try:
                original(self, *bound.args[1:], **bound.kwargs)
            except BaseException as exc:
                finish_failed(span, exc)
                raise
        if span is not None:
            tracked = _Tracked(span)
            self._tracetape_tracked = tracked  # type: ignore[attr-defined]
            if self.stdout is not None:
                self.stdout = _Tee(self.stdout, tracked, "stdout")  # type: ignore[assignment]
            if self.stderr is not None:
                self.stderr = _Tee(self.stderr, tracked, "stderr")  # type: ignore[assignment]
            guarded(span.set_attribute, "process.pid", self.pid)
            weakref.finalize(self, tracked.end, None)
        return None

    return __init__


def _communicate(original: Callable[..., tuple[Any, Any]]) -> Callable[..., tuple[Any, Any]]:
    @functools.wraps(original)
    def communicate(self: subprocess.Popen, input: Any = None, timeout: float | None = None) -> tuple[Any, Any]:
        if getattr(self, "_tracetape_replayed", False):  # what is left in the recorded pipes
            return (self.stdout.read() if self.stdout else None), (self.stderr.read() if self.stderr else None)
        tracked: _Tracked | None = getattr(self, "_tracetape_tracked", None)
        if tracked is None:
            return original(self, input, timeout)
        tracked.depth += 1
        try:
            stdout, stderr = original(self, input, timeout)
        finally:
            tracked.depth -= 1
        tracked.end(self.returncode, stdout, stderr)
        return stdout, stderr

    return communicate


def _exit_code_of(original: Callable[..., int | None]) -> Callable[..., int | None]:
    """wait() and poll(): the recorded code when replayed; end the event when the code is first seen."""
    @functools.wraps(original)
    def method(self: subprocess.Popen, *args: Any, **kwargs: Any) -> int | None:
        if getattr(self, "_tracetape_replayed", False):
            return self.returncode
        code = original(self, *args, **kwargs)
        tracked: _Tracked | None = getattr(self, "_tracetape_tracked", None)
        if tracked is not None and code is not None and tracked.depth == 0:
            tracked.end(code)
        return code

    return method


def patches(popen: type) -> list[tuple[Any, str, Any]]:
    """The patch list for ``subprocess.Popen``."""
    return [
        (popen, "__init__", _popen_init(popen.__init__)),
        (popen, "communicate", _communicate(popen.communicate)),
        (popen, "wait", _exit_code_of(popen.wait)),
        (popen, "poll", _exit_code_of(popen.poll)),
    ]
