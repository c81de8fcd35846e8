"""The ``tracetape`` command: collector, runs, show, demo."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Sequence

from tracetape.schemas.errors import TracetapeError

__all__ = ["main"]


def _collector(args: argparse.Namespace) -> int:
    from tracetape.collector import settings
    from tracetape.collector.logs import configure_logging
    from tracetape.collector.server import run

    cfg = settings.load(args)
    configure_logging(cfg.log_format, logging.DEBUG if args.verbose else logging.INFO)
    return run(cfg)


def _run(args: argparse.Namespace) -> int:
    from tracetape.instrumentation.launcher import run_command

    return run_command(args)


def _runs(args: argparse.Namespace) -> int:
    from tracetape.replay import open_store
    from tracetape.replay.render import runs_table

    with open_store(args.store, project=args.project, data_dir=args.data_dir) as store:
        print(runs_table(store.runs(agent=args.agent, outcome=args.outcome, tag=args.tag, limit=args.limit)))
    return 0


def _show(args: argparse.Namespace) -> int:
    from tracetape.replay import load, open_store
    from tracetape.replay.render import step_detail, timeline, to_json

    with open_store(args.store, project=args.project, data_dir=args.data_dir) as store:
        trajectory = load(args.run, store=store)
        if args.json:
            print(to_json(trajectory, args.step))
        elif args.step is not None:
            print(step_detail(trajectory.step(args.step)))
        else:
            print(timeline(trajectory))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from tracetape.demo.run_demo import run_demo

    return run_demo(data_dir=args.data_dir, keep=args.keep)


def _store_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", help="ClickHouse URL or chDB directory (default: the local collector or "
                                        "TRACETAPE_STORE)")
    parser.add_argument("--data-dir", help="local data directory (default: TRACETAPE_DATA_DIR or ~/.tracetape)")
    parser.add_argument("--project", help="project to read (default: TRACETAPE_PROJECT or 'default')")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tracetape", description="Record, store and replay AI agent runs.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True)

    collector = commands.add_parser("collector", aliases=["serve"], help="run the OTLP collector")
    from tracetape.collector import settings

    settings.add_arguments(collector)
    collector.set_defaults(handler=_collector)

    runs = commands.add_parser("runs", help="list recorded runs")
    _store_options(runs)
    runs.add_argument("--agent")
    runs.add_argument("--outcome", choices=["ok", "error"])
    runs.add_argument("--tag")
    runs.add_argument("--limit", type=int, default=50)
    runs.set_defaults(handler=_runs)

    show = commands.add_parser("show", help="print a run as an ordered timeline")
    _store_options(show)
    show.add_argument("run", help="run id or unique prefix")
    show.add_argument("--step", type=int, help="one step in full, payloads included")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    show.set_defaults(handler=_show)

    from tracetape.instrumentation.launcher import add_arguments
    from tracetape.replay.commands import register

    launcher = commands.add_parser("run", help="run a command with every Python process it starts recorded")
    add_arguments(launcher)
    launcher.set_defaults(handler=_run)
    register(commands, _store_options)

    demo = commands.add_parser("demo", help="record a bundled agent against a mock model, store it, read it back")
    demo.add_argument("--data-dir", help="where to keep the demo store (default: a temporary directory)")
    demo.add_argument("--keep", action="store_true", help="keep the temporary store")
    demo.set_defaults(handler=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.handler(args) or 0)
    except TracetapeError as exc:
        print(f"tracetape: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
