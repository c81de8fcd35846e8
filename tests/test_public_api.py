"""The public surface is pinned: a change to it is a deliberate, visible edit here."""

from __future__ import annotations

import subprocess
import sys

import tracetape
from tracetape import instrumentation, replay


def test_facade_exports():
    assert sorted(tracetape.__all__) == sorted([
        "BlobStats", "Run", "blob_stats", "current_run", "flush", "instrument", "memory", "run", "tool",
        "uninstrument",
    ])
    for name in tracetape.__all__:
        assert getattr(tracetape, name) is getattr(instrumentation, name)


def test_blob_stats_before_instrument_are_zero():
    """Not instrumented, nothing is queued, uploaded or dropped: a health check reads zeros, not an error."""
    code = "import tracetape; print(tracetape.blob_stats() == tracetape.BlobStats())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "True"


def test_replay_exports():
    assert {"load", "open_store", "Trajectory", "Step", "RunInfo", "EventKind"} <= set(replay.__all__)


def test_importing_tracetape_stays_light():
    """An agent's `import tracetape` must not drag in gRPC servers, chDB or ClickHouse clients."""
    code = ("import sys, tracetape; heavy = [m for m in sys.modules if m.split('.')[0] in "
            "('grpc', 'chdb', 'clickhouse_connect', 'tracetape.collector', 'openai')]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
