"""``tracetape demo``: the whole loop on one machine, nothing but loopback.

Starts a collector (embedded chDB) as its own process, a mock OpenAI server,
runs the example agent as a separate instrumented process, reads the run
back through the collector's SQL endpoint and prints its timeline, then runs
the same agent again under ``tracetape replay --mode strict``: every model and
tool call is served from the recording, the mock sees no new request, and the
answer is the same.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from tracetape.demo.mock_openai import MockOpenAI

__all__ = ["run_demo", "start_collector", "wait_for_state"]

_STARTUP_TIMEOUT_S = 60.0


def wait_for_state(data_dir: str, process: subprocess.Popen, timeout: float = _STARTUP_TIMEOUT_S) -> dict:
    """The collector's published endpoints, once it is up."""
    path = os.path.join(data_dir, "collector.json")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"collector exited with code {process.returncode}")
        try:
            with open(path, encoding="utf-8") as fh:
                state = json.load(fh)
            if state.get("pid") == process.pid:
                return state
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    raise TimeoutError(f"collector did not start within {timeout:.0f}s")


def start_collector(data_dir: str, *extra: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen, dict]:
    """A collector process on ephemeral loopback ports over an embedded store in *data_dir*."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tracetape", "collector", "--data-dir", data_dir,
         "--grpc-listen", "127.0.0.1:0", "--sql-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0",
         *extra],
        env=env, stdout=subprocess.DEVNULL)
    try:
        return process, wait_for_state(data_dir, process)
    except BaseException:
        process.kill()
        process.wait()
        raise


def stop_collector(process: subprocess.Popen, timeout: float = 30.0) -> int:
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


def _replay(run_id: str, store: str, env: dict[str, str], mock: MockOpenAI, data_dir: str) -> dict:
    """The agent again under a strict replay of *run_id*: its answer, live calls and divergences."""
    calls_before = mock.call_count
    report = os.path.join(data_dir, "replay-report.json")
    agent = subprocess.run(
        [sys.executable, "-m", "tracetape", "replay", "--store", store, "--mode", "strict", "--report", report,
         run_id, "--", sys.executable, "-m", "tracetape.demo.agent"],
        env=env, check=True, capture_output=True, text=True, timeout=120)
    with open(report, encoding="utf-8") as fh:
        divergences = len(json.load(fh).get("divergences", []))
    replayed = json.loads(agent.stdout.strip().splitlines()[-1])
    return {**replayed, "live_calls": mock.call_count - calls_before, "divergences": divergences}


def run_demo(data_dir: str | None = None, keep: bool = False) -> int:
    from tracetape.replay import load, open_store
    from tracetape.replay.render import timeline

    temporary = data_dir is None
    data_dir = data_dir or tempfile.mkdtemp(prefix="tracetape-demo-")
    collector, state = start_collector(data_dir)
    try:
        print(f"collector: OTLP/gRPC {state['grpc']}, SQL {state['sql']}, store {state['store']}")
        with MockOpenAI() as mock:  # serves both the recording and (with no new request) the replay
            env = dict(os.environ, OTEL_EXPORTER_OTLP_ENDPOINT=state["grpc"], OPENAI_BASE_URL=mock.base_url,
                       OPENAI_API_KEY="sk-demo-not-a-real-key", OTEL_SERVICE_NAME="weather-agent")
            agent = subprocess.run([sys.executable, "-m", "tracetape.demo.agent"], env=env, check=True,
                                   capture_output=True, text=True, timeout=120)
            result = json.loads(agent.stdout.strip().splitlines()[-1])
            print(f"agent answered: {result['answer']!r}  ({mock.call_count} model calls to the mock)")
            with open_store(state["sql"]) as store:
                trajectory = load(result["run_id"], store=store)
                print(f"\nread back from the store ({len(trajectory)} steps):\n")
                print(timeline(trajectory))
                model_call = trajectory.filter("model_call")[0]
                request = model_call.json("request")
                print(f"\nstep {model_call.index} request payload, verified against its sha256: "
                      f"{len(model_call.blob('request'))} bytes, {len(request['messages'])} messages, "
                      f"{len(request.get('tools', []))} tool schema(s)")
            replayed = _replay(result["run_id"], state["sql"], env, mock, data_dir)
            same = "identical" if replayed["answer"] == result["answer"] else "DIFFERENT"
            print(f"\nreplayed strictly from the store: answer {same}, {replayed['live_calls']} live model calls, "
                  f"{replayed['divergences']} divergences (replay run {replayed['run_id'][:12]}, itself stored)")
    finally:
        stop_collector(collector)
    print(f"\ncollector stopped; the store stays readable offline: tracetape show {result['run_id'][:12]} "
          f"--data-dir {data_dir}" if not temporary or keep else "")
    if temporary and not keep:
        shutil.rmtree(data_dir, ignore_errors=True)
    return 0
