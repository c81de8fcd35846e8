"""The replay side of the ``tracetape`` command (replay, diff, pull, push), and the hook that
lets ``tracetape replay RUN -- python agent.py`` replay inside an unmodified agent process.

``tracetape replay`` pulls the run into a tape (unless given one), then runs
the command with ``TRACETAPE_REPLAY=<tape>`` and the mode in its environment.
The agent's own ``tracetape.instrument()`` call installs the player
(:func:`activate_from_env`); at exit the player writes its report where
``TRACETAPE_REPLAY_REPORT`` says, and the command prints it. The exit status
is the agent's if it failed, else 3 when a strict or observe replay diverged.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import subprocess
import sys
import tempfile
from typing import Any, Callable, Sequence

from tracetape.schemas.config import REPLAY, REPLAY_ALLOW, REPLAY_FORK_AT, REPLAY_MODE, REPLAY_REPORT, setting
from tracetape.schemas.errors import ConfigError

from ._player import Mode, Player

__all__ = ["activate_from_env", "register", "replay_command", "diff_command", "pull_command", "push_command"]

DIVERGED = 3

_env_player: Player | None = None


def activate_from_env() -> Player | None:
    """Install the player ``TRACETAPE_REPLAY`` asks for (once per process); None when not replaying.

    Called by ``tracetape.instrument()``. A replay that cannot start raises:
    running the agent live instead would spend the very API calls the
    replay exists to avoid.
    """
    global _env_player
    source = setting(REPLAY)
    if not source or _env_player is not None:
        return _env_player
    from . import player

    _env_player = player(source, setting(REPLAY_MODE), fork_at=setting(REPLAY_FORK_AT) or None,
                         allow=[a for a in setting(REPLAY_ALLOW).split(",") if a.strip()]).start()
    atexit.register(_finish, _env_player)
    return _env_player


def _finish(replaying: Player) -> None:
    replaying.stop()
    report = replaying.to_dict() | {"text": replaying.report()}
    path = setting(REPLAY_REPORT)
    if path:
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(report, fh, ensure_ascii=False, indent=1)
    elif replaying.divergences:
        print(report["text"], file=sys.stderr)


def replay_command(run: str, command: Sequence[str], *, mode: str = Mode.STRICT.value, fork_at: int | None = None,
                   allow: Sequence[str] = (), store: str | None = None, project: str | None = None,
                   data_dir: str | None = None, report: str | None = None) -> int:
    """Run *command* with *run* replayed inside it; print the replay report; return the exit status."""
    from . import open_store, pull
    from .tape import is_tape

    command = list(command[1:] if command and command[0] == "--" else command)
    if not command:
        raise ConfigError("give the command to replay after --, e.g. tracetape replay RUN -- python agent.py")
    mode = Mode(mode).value
    with tempfile.TemporaryDirectory(prefix="tracetape-replay-") as work:
        tape = run
        if not is_tape(run):
            with open_store(store, project=project, data_dir=data_dir) as source:
                tape = pull(run, os.path.join(work, "run.tape"), store=source)
        report_path = report or os.path.join(work, "report.json")
        env = dict(os.environ)
        env.update({REPLAY.env: os.path.abspath(tape), REPLAY_MODE.env: mode, REPLAY_REPORT.env: report_path,
                    REPLAY_FORK_AT.env: str(fork_at or 0), REPLAY_ALLOW.env: ",".join(allow)})
        code = subprocess.run(command, env=env).returncode
        try:
            with open(report_path, encoding="utf-8") as fh:
                outcome: dict[str, Any] = json.load(fh)
        except (OSError, ValueError):
            print("tracetape: the command did not replay (does it call tracetape.instrument()?)", file=sys.stderr)
            return code or DIVERGED
    print(outcome["text"], file=sys.stderr)
    if code:
        return code
    return DIVERGED if outcome["divergences"] and mode in (Mode.STRICT.value, Mode.OBSERVE.value) else 0


def diff_command(a: str, b: str, *, as_json: bool = False, store: str | None = None, project: str | None = None,
                 data_dir: str | None = None) -> str:
    from . import diff, open_store
    from .tape import is_tape

    if is_tape(a) and is_tape(b):
        found = diff(a, b)
    else:
        with open_store(store, project=project, data_dir=data_dir) as source:
            found = diff(a, b, store=source)
    return found.to_json() if as_json else found.text()


def pull_command(run: str, out: str | None, *, store: str | None = None, project: str | None = None,
                 data_dir: str | None = None) -> str:
    from . import open_store, pull

    with open_store(store, project=project, data_dir=data_dir) as source:
        return pull(run, out or f"{run}.tape", store=source)


def push_command(tape: str, endpoint: str | None = None) -> int:
    from . import push

    return push(tape, endpoint)


def _replay(args: argparse.Namespace) -> int:
    if args.command and args.command[0].startswith("-") and args.command[0] != "--":
        raise ConfigError(f"tracetape replay: {args.command[0]} after RUN; options go before it: "
                          "tracetape replay --mode observe RUN -- python agent.py")
    return replay_command(args.run, args.command, mode=args.mode, fork_at=args.fork_at, allow=args.allow or (),
                          store=args.store, project=args.project, data_dir=args.data_dir, report=args.report)


def _diff(args: argparse.Namespace) -> int:
    print(diff_command(args.a, args.b, as_json=args.json, store=args.store, project=args.project,
                       data_dir=args.data_dir))
    return 0


def _pull(args: argparse.Namespace) -> int:
    print(pull_command(args.run, args.output, store=args.store, project=args.project, data_dir=args.data_dir))
    return 0


def _push(args: argparse.Namespace) -> int:
    sent = push_command(args.tape, args.endpoint)
    print(f"pushed {sent} spans from {args.tape}")
    return 0


def register(commands: Any, store_options: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add ``replay``, ``diff``, ``pull`` and ``push`` to the ``tracetape`` command's subparsers."""
    replay = commands.add_parser("replay", help="run a command with a recorded run replayed inside it")
    store_options(replay)
    replay.add_argument("run", help="run id, unique prefix, or tape file")
    replay.add_argument("--mode", choices=[m.value for m in Mode], default=Mode.STRICT.value)
    replay.add_argument("--fork-at", type=int, help="fork mode: last recorded step to serve; live after it")
    replay.add_argument("--allow", action="append", metavar="HOST:PORT", help="endpoint live connections may reach")
    replay.add_argument("--report", help="also keep the replay report (JSON) in this file")
    replay.add_argument("command", nargs=argparse.REMAINDER,
                        help="the command to run, after --; options of replay go before RUN")
    replay.set_defaults(handler=_replay)

    diff = commands.add_parser("diff", help="compare two runs event by event")
    store_options(diff)
    diff.add_argument("a", help="run id, prefix or tape file")
    diff.add_argument("b", help="run id, prefix or tape file")
    diff.add_argument("--json", action="store_true", help="machine-readable output")
    diff.set_defaults(handler=_diff)

    pull = commands.add_parser("pull", help="write a run into a self-contained tape file")
    store_options(pull)
    pull.add_argument("run", help="run id or unique prefix")
    pull.add_argument("-o", "--output", help="tape file to write (default: RUN.tape)")
    pull.set_defaults(handler=_pull)

    push = commands.add_parser("push", help="upload a tape file to a collector")
    push.add_argument("tape", help="tape file")
    push.add_argument("--endpoint", help="collector OTLP/gRPC endpoint (default: OTEL_EXPORTER_OTLP_ENDPOINT)")
    push.set_defaults(handler=_push)
