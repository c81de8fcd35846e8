"""The replay subcommands as ``tracetape`` wires them: parsed by argparse, handled in process."""

from __future__ import annotations

import argparse
import json

import pytest

from tracetape import replay
from tracetape.cli import _store_options
from tracetape.replay.commands import register
from tracetape.schemas.errors import ConfigError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tracetape")
    register(parser.add_subparsers(dest="command_name", required=True), _store_options)
    return parser


def _run(*argv: str) -> int:
    args = _parser().parse_args(argv)
    return args.handler(args)


def test_pull_then_diff_a_tape_against_the_stored_run(recording, tmp_path, capsys):
    out = tmp_path / "pulled.tape"
    assert _run("pull", recording.run_id[:10], "-o", str(out), "--store", recording.sql) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert replay.load(out).run.run_id == recording.run_id

    assert _run("diff", str(out), recording.run_id, "--store", recording.sql, "--json") == 0
    document = json.loads(capsys.readouterr().out)
    assert document["first_divergence"] is None
    assert document["summary"]["aligned"]["same"] == 9

    assert _run("diff", str(out), str(recording.tape)) == 0, "two tapes need no store at all"
    assert "no divergence: the runs match event for event" in capsys.readouterr().out


def test_replay_options_go_before_the_run_and_the_command_after_a_double_dash():
    args = _parser().parse_args(["replay", "--mode", "fork", "--fork-at", "4", "--allow", "127.0.0.1:8080",
                                 "abc123", "--", "python", "agent.py", "--verbose"])
    assert (args.run, args.mode, args.fork_at, args.allow) == ("abc123", "fork", 4, ["127.0.0.1:8080"])
    assert [a for a in args.command if a != "--"] == ["python", "agent.py", "--verbose"]

    late = _parser().parse_args(["replay", "abc123", "--mode", "fork", "--", "python", "agent.py"])
    with pytest.raises(ConfigError, match="options go before it"):
        late.handler(late)
