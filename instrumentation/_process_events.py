"""What every subprocess event shares: Popen's arguments read by name, the canonical
request, the run link handed to the child, and the recorded outcome (see ``processes``)."""

from __future__ import annotations

import contextlib
import inspect
import os
import subprocess
from contextvars import ContextVar
from typing import Any, Iterator, Mapping

from opentelemetry import trace
from opentelemetry.trace import Span

from tracetape.schemas.attributes import SUBPROCESS_OUTPUT_TRUNCATED as OUTPUT_TRUNCATED
from tracetape.schemas import config
from tracetape.schemas.events import EventKind

from . import seam
from ._boundary import finish, pack_bytes, recorded_error, start, unpack_bytes
from ._guard import guarded
from ._links import child_link
from ._payload import to_json_bytes

__all__ = ["scope", "bind", "argv", "is_text", "program", "describe", "open_span", "current", "add_link",
           "rebuilt_error", "finish_failed", "finish_process", "KEEP_LIMIT", "OUTPUT_TRUNCATED"]

# Set while run() or an asyncio transport creates a Popen: that Popen is part of their event.
scope: ContextVar[str] = ContextVar("tracetape_subprocess_scope", default="")
_POPEN_SIGNATURE = inspect.signature(subprocess.Popen.__init__)
# Output read straight from a live Popen's pipes is kept up to this size for the recording.
KEEP_LIMIT = 64 * 1024 * 1024
_STREAMS = {None: "inherit", subprocess.PIPE: "pipe", subprocess.DEVNULL: "devnull", subprocess.STDOUT: "stdout"}


def _disposition(value: Any) -> str:
    try:
        return _STREAMS.get(value, "file")
    except TypeError:  # an unhashable file-like object
        return "file"


def argv(args: Any) -> list[str]:
    items = [args] if isinstance(args, (str, bytes, os.PathLike)) else list(args)
    return [os.fsdecode(a) if isinstance(a, (bytes, os.PathLike)) else str(a) for a in items]


def is_text(arguments: Mapping[str, Any]) -> bool:
    return bool(arguments.get("text") or arguments.get("universal_newlines") or arguments.get("encoding")
                or arguments.get("errors"))


def bind(args: tuple, kwargs: dict[str, Any]) -> inspect.BoundArguments:
    """Popen's arguments by name; a one-shot iterable of argv is materialized so we can read it too."""
    bound = _POPEN_SIGNATURE.bind(None, *args, **kwargs)
    bound.apply_defaults()
    given = bound.arguments["args"]
    if not isinstance(given, (str, bytes, os.PathLike, list, tuple)):
        bound.arguments["args"] = list(given)
    return bound


def program(arguments: Mapping[str, Any]) -> str:
    items = argv(arguments["args"])
    first = items[0] if items else ""
    if arguments.get("shell") and first.split():
        first = first.split()[0]
    return os.path.basename(os.fsdecode(arguments.get("executable") or first)) or "?"


def _request(api: str, arguments: Mapping[str, Any], extra: Mapping[str, Any] | None = None) -> bytes:
    cwd = arguments.get("cwd")
    executable = arguments.get("executable")
    return to_json_bytes({
        "api": api,
        "argv": argv(arguments["args"]),
        "shell": bool(arguments.get("shell")),
        "cwd": os.fsdecode(cwd) if cwd is not None else None,
        "executable": os.fsdecode(executable) if executable is not None else None,
        "stdin": _disposition(arguments.get("stdin")),
        "stdout": _disposition(arguments.get("stdout")),
        "stderr": _disposition(arguments.get("stderr")),
        "text": is_text(arguments),
        **(extra or {}),
    })


def describe(api: str, arguments: Mapping[str, Any], extra: Mapping[str, Any] | None = None
              ) -> tuple[str, bytes]:
    """The event's name and canonical request bytes."""
    return f"exec {program(arguments)}", _request(api, arguments, extra)


def open_span(name: str, request: bytes, arguments: Mapping[str, Any]) -> Span:
    cwd = arguments.get("cwd")
    return start(name, EventKind.SUBPROCESS, request, {
        "process.command_args": argv(arguments["args"]),
        "process.executable.name": program(arguments),
        "process.working_directory": os.fsdecode(cwd) if cwd is not None else os.getcwd(),
    })


@contextlib.contextmanager
def current(span: Span | None) -> Iterator[None]:
    if span is None:
        yield
        return
    with trace.use_span(span, end_on_exit=False, record_exception=False, set_status_on_exception=False):
        yield


def add_link(arguments: dict[str, Any]) -> None:
    """Put the current run's link into the environment the child will get.

    A child given an environment of its own (an MCP stdio server gets a
    minimal one by default) also gets our collector endpoint and project,
    when it names none, so that joining the run also means reaching it.
    """
    link = child_link()
    if link is None:
        return
    env = arguments.get("env")
    carried = {} if env is None else {
        spec.env: os.environ[spec.env] for spec in (config.OTLP_ENDPOINT, config.PROJECT)
        if spec.env in os.environ and spec.env not in env}
    arguments["env"] = {**(os.environ if env is None else env), **carried, **link.to_env()}


def _failure(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, subprocess.TimeoutExpired):
        return {"timeout": exc.timeout, "stdout": pack_bytes(exc.output), "stderr": pack_bytes(exc.stderr)}
    if isinstance(exc, subprocess.CalledProcessError):
        return {"returncode": exc.returncode, "stdout": pack_bytes(exc.output), "stderr": pack_bytes(exc.stderr)}
    if isinstance(exc, OSError):
        filename = os.fsdecode(exc.filename) if isinstance(exc.filename, (str, bytes, os.PathLike)) else None
        return {"errno": exc.errno, "strerror": exc.strerror, "filename": filename}
    return {}


def rebuilt_error(served: seam.Served, response: Mapping[str, Any], args: Any) -> BaseException:
    if served.error_type == "TimeoutExpired":
        return subprocess.TimeoutExpired(args, response.get("timeout"), unpack_bytes(response.get("stdout"), False),
                                         unpack_bytes(response.get("stderr"), False))
    if response.get("errno") is not None:
        return OSError(response["errno"], response.get("strerror"), response.get("filename"))
    return recorded_error(served)


def finish_failed(span: Span | None, exc: BaseException) -> None:
    if span is not None:
        guarded(finish, span, to_json_bytes(_failure(exc)), exc)


def finish_process(span: Span, returncode: int | None, stdout: Any = None, stderr: Any = None,
                    truncated: bool = False) -> None:
    if returncode is not None:
        span.set_attribute("process.exit.code", returncode)
    if truncated:
        span.set_attribute(OUTPUT_TRUNCATED, True)
    finish(span, to_json_bytes({"returncode": returncode, "stdout": pack_bytes(stdout),
                                "stderr": pack_bytes(stderr)}))
