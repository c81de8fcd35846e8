"""Subprocesses as boundary events, and child processes as members of the run.

Captured as ``subprocess`` events (argv, cwd, stream dispositions; exit code,
stdout/stderr bytes):

- ``subprocess.run`` and what is built on it (``check_output``, ``getoutput``,
  ``getstatusoutput``): the input's hash is part of the request; a timeout or
  a failed check is recorded. Replay returns a ``CompletedProcess`` (or raises
  the recorded ``TimeoutExpired`` / ``CalledProcessError`` / ``OSError``)
  without starting anything.
- ``subprocess.Popen`` used directly (and ``call``, ``check_call``,
  ``os.popen``, which use it): the exit code once ``wait()``/``poll()`` sees
  it, and stdout/stderr as the program reads them — through
  ``communicate()`` or straight from ``p.stdout``/``p.stderr`` (kept up to
  64 MiB). Replay gives a ``Popen`` that starts nothing: ``communicate()``,
  ``wait()``, ``poll()`` and the ``stdout``/``stderr`` pipes give what was
  recorded.

Not captured: bytes written to ``p.stdin`` (only ``run()``'s ``input`` is
part of a request, as a hash), output read after the exit code was first
seen (the event has ended by then), asyncio subprocesses (their transports
read the pipes themselves), ``os.system``, ``os.exec*``/``os.spawn*``,
``pty``. Not replayed: a timeout of a direct ``Popen.wait``/``communicate``
(the replayed process has already finished).

Every process started inside a run — by ``subprocess``, asyncio or
``multiprocessing`` — also gets the run's link (``_links``) in its
environment, so a child that calls ``tracetape.instrument()`` (or runs under
``tracetape run``) records into the same run, under the event that started
it; a ``multiprocessing`` worker is instrumented and joined by its entry
wrapper, and flushed before it exits. A child that is served during replay
never starts, and its recorded events are consumed with the event that
started it. A ``multiprocessing`` worker is not a served boundary: during a
replay it runs live (the player serves the process it was installed in).
"""

from __future__ import annotations

import functools
import hashlib
import json
import subprocess
from typing import Any, Callable, Collection

from opentelemetry.instrumentation.instrumentor import BaseInstrumentor

from tracetape.schemas.events import EventKind

from . import _popen, seam
from ._boundary import ask_player, finish, suppressed, unpack_bytes
from ._deferred import DeferredPatches
from ._guard import guarded
from ._links import ProcessMembership, RunLink, child_link
from ._nesting import inside_model_call
from ._process_events import (bind, current, describe, finish_failed, finish_process, is_text, open_span,
                              rebuilt_error, scope)
from ._runs import current_run

__all__ = ["ProcessesInstrumentor"]


# -- subprocess.run -----------------------------------------------------------

def _served_run(served: seam.Served, args: Any, text: bool, check: bool) -> subprocess.CompletedProcess:
    response = json.loads(served.response) if served.response else {}
    if served.error_type and served.error_type != "CalledProcessError":
        raise rebuilt_error(served, response, args)
    completed = subprocess.CompletedProcess(args, response.get("returncode"),
                                            unpack_bytes(response.get("stdout"), text),
                                            unpack_bytes(response.get("stderr"), text))
    if check:
        completed.check_returncode()
    return completed


def _run_request(popenargs: tuple, kwargs: dict[str, Any]) -> tuple[str, bytes, dict[str, Any]]:
    """run()'s event: Popen's arguments as run() will pass them, plus the input's hash and check."""
    popen_kwargs = {k: v for k, v in kwargs.items() if k not in ("input", "capture_output", "timeout", "check")}
    if kwargs.get("capture_output"):
        popen_kwargs.update(stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    data = kwargs.get("input")
    if data is not None:
        popen_kwargs["stdin"] = subprocess.PIPE
    arguments = dict(bind(popenargs, popen_kwargs).arguments)
    extra: dict[str, Any] = {"check": bool(kwargs.get("check"))}
    if data is not None:
        raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
        extra["input_sha256"] = hashlib.sha256(raw).hexdigest()
    name, request = describe("run", arguments, extra)
    return name, request, arguments


def _run_wrapper(original: Callable[..., subprocess.CompletedProcess]) -> Callable[..., subprocess.CompletedProcess]:
    @functools.wraps(original)
    def run(*popenargs: Any, **kwargs: Any) -> subprocess.CompletedProcess:
        if suppressed() or scope.get() or inside_model_call():
            return original(*popenargs, **kwargs)
        described = guarded(_run_request, popenargs, kwargs)
        if described is None:
            return original(*popenargs, **kwargs)
        name, request, arguments = described
        if popenargs and popenargs[0] is not arguments["args"]:  # a one-shot argv, materialized by bind
            popenargs = (arguments["args"], *popenargs[1:])
        elif "args" in kwargs:
            kwargs["args"] = arguments["args"]
        span = guarded(open_span, name, request, arguments)
        served = ask_player(span, EventKind.SUBPROCESS, name, request)
        if served is not None:
            guarded(child_link)  # the child task the live call would have taken, so numbering matches
            try:
                completed = _served_run(served, arguments["args"], is_text(arguments), bool(kwargs.get("check")))
            except BaseException as exc:
                finish_failed(span, exc)
                raise
            if span is not None:
                guarded(finish, span, served.response)
            return completed
        token = scope.set("run")
        try:
            with current(span):
                completed = original(*popenargs, **kwargs)
        except BaseException as exc:
            finish_failed(span, exc)
            raise
        finally:
            scope.reset(token)
        if span is not None:
            guarded(finish_process, span, completed.returncode, completed.stdout, completed.stderr)
        return completed

    return run


def _asyncio_transport_init(original: Callable[..., None]) -> Callable[..., None]:
    @functools.wraps(original)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        token = scope.set("asyncio")
        try:
            original(self, *args, **kwargs)
        finally:
            scope.reset(token)

    return __init__


# -- multiprocessing -----------------------------------------------------------

class _ChildEntry:
    """A multiprocessing target that joins the parent's run in the child.

    Picklable, so it works with every start method: with ``spawn`` and
    ``forkserver`` the child instruments itself first. The child exits with
    ``os._exit`` (no atexit), so it flushes its events before returning.
    """

    def __init__(self, link: RunLink, target: Callable[..., Any]) -> None:
        self.link = link
        self.target = target

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from ._setup import flush, instrument

        membership: ProcessMembership | None = None
        if guarded(instrument) is not None:
            membership = guarded(ProcessMembership, self.link)
        try:
            return self.target(*args, **kwargs)
        finally:
            if membership is not None:
                guarded(membership.leave)
            guarded(flush)


def _process_start(original: Callable[[Any], None]) -> Callable[[Any], None]:
    @functools.wraps(original)
    def start(self: Any) -> None:
        target = getattr(self, "_target", None)
        if target is None or suppressed() or current_run() is None:
            return original(self)
        link = guarded(child_link)
        if link is None:
            return original(self)
        self._target = _ChildEntry(link, target)  # type: ignore[attr-defined]
        try:
            return original(self)
        finally:
            self._target = target  # type: ignore[attr-defined]

    return start


def _subprocess_patches(module: Any) -> list[tuple[Any, str, Any]]:
    return [(module, "run", _run_wrapper(module.run)), *_popen.patches(module.Popen)]


def _deferred() -> DeferredPatches:
    return DeferredPatches([
        ("subprocess", _subprocess_patches),
        ("asyncio.base_subprocess", lambda module: [
            (module.BaseSubprocessTransport, "__init__", _asyncio_transport_init(module.BaseSubprocessTransport.__init__))]),
        ("multiprocessing.process", lambda module: [
            (module.BaseProcess, "start", _process_start(module.BaseProcess.start))]),
    ])


class ProcessesInstrumentor(BaseInstrumentor):
    """Registered as the ``tracetape_subprocess`` opentelemetry_instrumentor entry point.

    Besides the patches, it makes a process started by a recorded run (its
    environment carries the run link) join that run, so disabling it also
    turns off cross-process runs.
    """

    _patches: DeferredPatches | None = None
    _membership: ProcessMembership | None = None

    def instrumentation_dependencies(self) -> Collection[str]:
        return ()

    def _instrument(self, **kwargs: Any) -> None:
        self._patches = self._patches or _deferred()
        self._patches.apply()
        link = guarded(RunLink.from_env)
        if link is not None:
            self._membership = guarded(ProcessMembership, link)

    def _uninstrument(self, **kwargs: Any) -> None:
        if self._membership is not None:
            guarded(self._membership.leave)
            self._membership = None
        if self._patches is not None:
            self._patches.undo()
