"""Fixtures in layers: a mock model provider (the outside world), a real
collector process on ephemeral loopback ports over a temporary chDB store,
and a runner for instrumented agent processes pointed at both."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from tracetape.demo.mock_openai import MockOpenAI
from tracetape.demo.run_demo import start_collector, stop_collector

AGENTS = Path(__file__).parent / "agents"


class CollectorProcess:
    """A running ``tracetape collector`` and what it published."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.process: subprocess.Popen | None = None
        self.state: dict = {}

    def start(self) -> "CollectorProcess":
        self.process, self.state = start_collector(str(self.data_dir))
        return self

    def stop(self) -> int:
        assert self.process is not None
        code = stop_collector(self.process)
        self.process = None
        return code

    @property
    def grpc(self) -> str:
        return self.state["grpc"]

    @property
    def sql(self) -> str:
        return self.state["sql"]

    @property
    def store_dir(self) -> str:
        return str(self.data_dir / "store")


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[CollectorProcess]:
    proc = CollectorProcess(tmp_path / "data").start()
    yield proc
    if proc.process is not None:
        proc.stop()


@pytest.fixture
def mock_openai() -> Iterator[MockOpenAI]:
    with MockOpenAI() as mock:
        yield mock


def run_agent(script: str | Path, collector: CollectorProcess, *args: str, mock: MockOpenAI | None = None,
              extra_env: dict[str, str] | None = None, timeout: float = 120) -> dict:
    """Run an instrumented agent process; it prints one JSON line as its result."""
    env = dict(os.environ, OTEL_EXPORTER_OTLP_ENDPOINT=collector.grpc, OPENAI_API_KEY="sk-test-secret-key-123")
    if mock is not None:
        env["OPENAI_BASE_URL"] = mock.base_url
    env.update(extra_env or {})
    command = [sys.executable, "-m", script] if isinstance(script, str) else [sys.executable, str(script)]
    done = subprocess.run([*command, *args], env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"agent failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def tracetape_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tracetape", *args], capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture
def agent() -> object:
    """``agent(script, collector, *args, mock=..., extra_env=...)`` → the agent's JSON result."""
    return run_agent


@pytest.fixture
def cli() -> object:
    """``cli(*args)`` → CompletedProcess of ``python -m tracetape ...``."""
    return tracetape_cli
