"""Zero-code recording: ``tracetape run -- python agent.py`` and ``opentelemetry-instrument python agent.py``."""

from __future__ import annotations

from pathlib import Path

import argparse
import json
import os
import subprocess
import sys

from tools_support import AGENTS, agent_env, load

from tracetape import replay
from tracetape.instrumentation.launcher import AUTOSTART_DIR, add_arguments, command_env
from tracetape.schemas.events import EventKind

SCRIPT = str(AGENTS / "tools_plain_agent.py")
LAUNCH = "import sys; from tracetape.instrumentation.launcher import main; sys.exit(main(sys.argv[1:]))"


def _launch(collector, tmp_path, *argv: str, **env: str) -> subprocess.CompletedProcess:
    environ = {**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": collector.grpc, **agent_env(tmp_path), **env}
    return subprocess.run([sys.executable, "-c", LAUNCH, *argv], env=environ, capture_output=True, text=True,
                          timeout=120)


def _run_id(done: subprocess.CompletedProcess) -> str:
    line = next(line for line in done.stderr.splitlines() if line.startswith("tracetape run: run "))
    return line.split()[3]


def _check_tree(trajectory) -> None:
    """The program's command, its child, and the child's command: one run, nested as they ran."""
    run = trajectory[0]
    echo, launch, child_echo = trajectory.filter(EventKind.SUBPROCESS)
    assert (echo.name, launch.name, child_echo.name) == ("exec echo", "exec python", "exec echo")
    assert echo.parent_span_id == launch.parent_span_id == run.span_id
    assert child_echo.parent_span_id == launch.span_id
    # Every process started takes the next child task of its starter: the echo got .1, the child .2.
    assert child_echo.task == launch.task + ".2"
    assert echo.json("response")["stdout"] == {"utf8": "parent here\n"}
    assert child_echo.json("response")["stdout"] == {"utf8": "child here\n"}
    assert [s.seq for s in trajectory] == list(range(1, len(trajectory) + 1))
    assert trajectory.run.event_count == len(trajectory)


def test_run_with_agent_records_the_whole_command_as_one_run(collector, tmp_path):
    done = _launch(collector, tmp_path, "--agent", "plain-agent", "--tag", "nightly", "--",
                   sys.executable, SCRIPT, "parent", "0")
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout.splitlines()[-1])
    assert printed["recorded"] and printed["child"]["recorded"], "both processes record themselves"
    trajectory = load(_run_id(done), collector)
    assert (trajectory.run.agent, trajectory.run.tags, trajectory.run.outcome) == ("plain-agent", ("nightly",), "ok")
    _check_tree(trajectory)


def test_exit_status_passes_through_and_decides_the_outcome(collector, tmp_path):
    done = _launch(collector, tmp_path, "--agent", "plain-agent", "--", sys.executable, SCRIPT, "child", "3")
    assert done.returncode == 3
    trajectory = load(_run_id(done), collector)
    assert trajectory.run.outcome == "error"
    assert "exit status 3" in trajectory[0].status_message
    # Without --agent the launcher becomes the command: same status, the program records itself.
    plain = _launch(collector, tmp_path, "--", sys.executable, SCRIPT, "child", "5")
    assert plain.returncode == 5
    assert json.loads(plain.stdout)["recorded"], "the program was instrumented by the autostart"
    missing = _launch(collector, tmp_path, "--agent", "plain-agent", "--", "/nonexistent/command")
    assert missing.returncode == 127 and "cannot run /nonexistent/command" in missing.stderr
    usage = _launch(collector, tmp_path)
    assert usage.returncode == 2 and "no command given" in usage.stderr


def test_the_options_work_as_a_subcommand_of_the_cli():
    # How tracetape/cli.py wires it: the subcommand's parser gets the launcher's options.
    parser = argparse.ArgumentParser(prog="tracetape")
    add_arguments(parser.add_subparsers(dest="sub").add_parser("run"))
    args = parser.parse_args(["run", "--agent", "a", "--tag", "x", "--tag", "y", "--", "python", "a.py", "--flag"])
    assert (args.agent, args.tag, args.command) == ("a", ["x", "y"], ["--", "python", "a.py", "--flag"])
    assert parser.parse_args(["run", "python", "-c", "pass"]).command == ["python", "-c", "pass"]


def test_autostart_directory_goes_first_on_pythonpath_once():
    env = command_env({"PYTHONPATH": os.pathsep.join(["/a", AUTOSTART_DIR, "/b"])})
    assert env["PYTHONPATH"].split(os.pathsep) == [AUTOSTART_DIR, "/a", "/b"]
    assert command_env({})["PYTHONPATH"] == AUTOSTART_DIR


def test_opentelemetry_instrument_records_through_the_tracetape_distro(collector, tmp_path):
    env = {**os.environ, **agent_env(tmp_path), "OTEL_EXPORTER_OTLP_ENDPOINT": collector.grpc,
           "OTEL_TRACES_EXPORTER": "otlp", "TRACETAPE_AGENT": "otel-agent", "TRACETAPE_TAGS": "a,b"}
    done = subprocess.run([str(Path(sys.executable).with_name("opentelemetry-instrument")), sys.executable,
                           SCRIPT, "parent", "0"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    with replay.open_store(collector.sql) as store:
        runs = store.runs(agent="otel-agent")
    assert len(runs) == 1
    trajectory = load(runs[0]["run_id"], collector)
    assert trajectory.run.tags == ("a", "b") and trajectory.run.outcome == "ok"
    _check_tree(trajectory)
