"""Shared by the determinism capture tests: one collector for all of them (each test reads back only
its own runs, so they can share a store; starting a collector is most of a test's time), and the
agents' environment."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Iterator

import pytest

from tracetape.demo.run_demo import start_collector, stop_collector

AGENTS = Path(__file__).parents[1] / "agents"
# These agents use no model client: skip loading (and importing) them, which is most of a start-up.
NO_CLIENTS = {"OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "tracetape_openai,tracetape_anthropic,tracetape_mcp"}


_shared: SimpleNamespace | None = None


@pytest.fixture(scope="session")
def shared_collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    """The one collector; each module importing this fixture gets the same process (the first starts it)."""
    global _shared
    if _shared is not None:
        yield _shared
        return
    data_dir = tmp_path_factory.mktemp("collector")
    process, state = start_collector(str(data_dir))
    _shared = SimpleNamespace(grpc=state["grpc"], sql=state["sql"], data_dir=data_dir)
    try:
        yield _shared
    finally:
        _shared = None
        stop_collector(process)


@pytest.fixture
def collector(shared_collector: SimpleNamespace) -> SimpleNamespace:
    """Overrides the suite's per-test collector in the modules that import it."""
    return shared_collector
