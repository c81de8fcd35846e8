"""Zero-code recording: ``tracetape run [--agent NAME] [--tag T ...] -- python agent.py args...``

The command runs with ``PYTHONPATH`` starting with the ``_autostart``
directory, whose ``sitecustomize`` calls :func:`autostart` (and then any
``sitecustomize`` that was already on the path), so every Python process
of the command — and every Python child it starts with that environment —
records itself with ``tracetape.instrument()``.

Without ``--agent`` the launcher simply becomes the command (``exec``):
runs are whatever the program opens with ``tracetape.run()``. With
``--agent`` the launcher opens the run itself, starts the command as a child
that joins it (the run link in its environment), forwards SIGTERM/SIGHUP
to it, waits, and closes the run with outcome ``error`` when the command
exits non-zero — so the exit status is the run's outcome exactly. Its exit
status is the command's.

The same autostart works under OpenTelemetry's own launcher,
``opentelemetry-instrument python agent.py``, through :class:`TracetapeDistro`
(entry point group ``opentelemetry_distro``, name ``tracetape``): it sets up
tracetape (exporter, run stamping, payload upload) instead of an SDK
configurator, loads tracetape's instrumentors itself, and lets
``opentelemetry-instrument`` load every other instrumentor as usual.
``TRACETAPE_AGENT`` then wraps the whole process in one run; its outcome is
``error`` on an uncaught exception (an exit status set with ``sys.exit`` is
not visible from inside the process).
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

from opentelemetry.instrumentation.distro import BaseDistro
from opentelemetry.instrumentation.utils import suppress_instrumentation

from tracetape.schemas import config
from tracetape.schemas.config import AGENT, TAGS

from ._guard import guarded
from ._links import child_link

__all__ = ["main", "add_arguments", "run_command", "autostart", "command_env", "TracetapeDistro",
           "AUTOSTART_DIR", "AGENT", "TAGS"]

AUTOSTART_DIR = str(Path(__file__).with_name("_autostart"))
_FORWARDED = (signal.SIGTERM, signal.SIGHUP)


def command_env(base: Mapping[str, str]) -> dict[str, str]:
    """*base* with the autostart directory first on ``PYTHONPATH`` (once)."""
    env = dict(base)
    rest = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != AUTOSTART_DIR]
    env["PYTHONPATH"] = os.pathsep.join([AUTOSTART_DIR, *rest])
    return env


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``tracetape run``, on *parser* (the CLI's subcommand parser, or :func:`main`'s)."""
    parser.add_argument("--agent", help="wrap the whole command in one run of this agent")
    parser.add_argument("--tag", action="append", default=[], help="tag of that run (repeatable)")
    parser.add_argument("--endpoint", help="collector endpoint (default: OTEL_EXPORTER_OTLP_ENDPOINT)")
    parser.add_argument("--project", help="project to record in (default: TRACETAPE_PROJECT)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- command and its arguments")


def main(argv: Sequence[str]) -> int:
    """``tracetape run``: the command's exit status (127 when it cannot be started, 2 on bad usage)."""
    parser = argparse.ArgumentParser(prog="tracetape run", description="Run a command with tracetape recording "
                                     "every Python process it starts.")
    add_arguments(parser)
    return run_command(parser.parse_args(list(argv)))


def run_command(args: argparse.Namespace) -> int:
    """Run what :func:`add_arguments` parsed: exec the command, or (with ``--agent``) own its run."""
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        print("tracetape run: no command given (tracetape run [options] -- command args...)", file=sys.stderr)
        return 2
    env = command_env(os.environ)
    if args.endpoint:
        env[config.OTLP_ENDPOINT.env] = args.endpoint
    if args.project:
        env[config.PROJECT.env] = args.project
    if not args.agent:
        try:
            os.execvpe(command[0], command, env)
        except OSError as exc:
            print(f"tracetape run: cannot run {command[0]}: {exc.strerror}", file=sys.stderr)
            return 127
    return _run_recorded(args.agent, args.tag, command, env, args.endpoint, args.project)


def _wait_forwarding(process: subprocess.Popen) -> int:
    previous = {sig: signal.signal(sig, lambda signum, _frame: process.send_signal(signum)) for sig in _FORWARDED}
    # Ctrl-C reaches the whole foreground process group: the command handles it, we wait for it.
    previous[signal.SIGINT] = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        code = process.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 128 - code if code < 0 else code


def _run_recorded(agent: str, tags: Sequence[str], command: list[str], env: dict[str, str],
                  endpoint: str | None, project: str | None) -> int:
    import tracetape

    tracetape.instrument(endpoint, project=project)
    code, run_id = 127, ""
    try:
        with tracetape.run(agent, tags) as current:
            run_id = current.run_id
            link = child_link()
            child_env = {**env, **(link.to_env() if link is not None else {})}
            try:
                with suppress_instrumentation():  # our own child is the run, not an event of it
                    process = subprocess.Popen(command, env=child_env)
            except OSError as exc:
                print(f"tracetape run: cannot run {command[0]}: {exc.strerror}", file=sys.stderr)
                raise
            code = _wait_forwarding(process)
            if code != 0:
                raise subprocess.CalledProcessError(code, command)
    except (subprocess.CalledProcessError, OSError):
        pass
    finally:
        tracetape.flush()
    print(f"tracetape run: run {run_id} ({agent}) exited {code}", file=sys.stderr)
    return code


# -- inside the recorded process ------------------------------------------------

class _ProcessRun:
    """A run around the whole process, closed at exit; an uncaught exception makes it fail."""

    def __init__(self, agent: str, tags: Sequence[str]) -> None:
        import tracetape

        self._context = tracetape.run(agent, tags)
        self._context.__enter__()
        self._uncaught: tuple[Any, Any, Any] = (None, None, None)
        self._previous_hook = sys.excepthook
        sys.excepthook = self._excepthook
        atexit.register(self.close)

    def _excepthook(self, kind: Any, value: Any, traceback: Any) -> None:
        self._uncaught = (kind, value, traceback)
        self._previous_hook(kind, value, traceback)

    def close(self) -> None:
        sys.excepthook = self._previous_hook
        with contextlib.suppress(BaseException):  # the exception was already reported by the hook
            self._context.__exit__(*self._uncaught)


def autostart() -> None:
    """Record this process: ``instrument()``, then a run around it when ``TRACETAPE_AGENT`` says so
    and no parent run is being joined."""
    import tracetape

    if guarded(tracetape.instrument) is None:
        return
    agent = config.setting(AGENT)
    if agent and not config.setting(config.RUN_ID):
        tags = [t.strip() for t in config.setting(TAGS).split(",") if t.strip()]
        guarded(_ProcessRun, agent, tags)


class TracetapeDistro(BaseDistro):
    """``opentelemetry-instrument`` support (entry point ``opentelemetry_distro``: ``tracetape``)."""

    def _configure(self, **kwargs: Any) -> None:
        autostart()

    def load_instrumentor(self, entry_point: Any, **kwargs: Any) -> None:
        if entry_point.name.startswith("tracetape_"):
            return  # instrument() has loaded tracetape's own instrumentors already
        super().load_instrumentor(entry_point, **kwargs)
