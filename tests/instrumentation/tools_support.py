"""Shared by the tools-and-outside-world tests (MCP, HTTP, processes, launcher).

The instrumentors under test are found the way users get them: as entry
points (``tracetape_mcp``, ``tracetape_http``, ``tracetape_subprocess``, the
``tracetape`` distro). Until the installed distribution declares them, the
agent processes get them from a small ``*.dist-info`` directory put on their
``PYTHONPATH``; an entry point the installation already declares is not
repeated.
"""

from __future__ import annotations

import os
from importlib.metadata import entry_points
from pathlib import Path

from tracetape import replay
from tracetape.replay import Trajectory

AGENTS = Path(__file__).parents[1] / "agents"
ENTRY_POINTS = {
    "opentelemetry_instrumentor": {
        "tracetape_mcp": "tracetape.instrumentation.mcp:MCPInstrumentor",
        "tracetape_http": "tracetape.instrumentation.http:HTTPInstrumentor",
        "tracetape_subprocess": "tracetape.instrumentation.processes:ProcessesInstrumentor",
    },
    "opentelemetry_distro": {"tracetape": "tracetape.instrumentation.launcher:TracetapeDistro"},
}


def entry_point_dir(root: Path) -> str:
    """A directory that, on PYTHONPATH, registers the entry points the installation lacks."""
    lines = []
    for group, entries in ENTRY_POINTS.items():
        declared = {e.name: e.value for e in entry_points(group=group)}
        missing = {name: value for name, value in entries.items() if declared.get(name) != value}
        if missing:
            lines.append(f"[{group}]")
            lines.extend(f"{name} = {value}" for name, value in missing.items())
    info = root / "tracetape_tools_entrypoints-0.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tracetape-tools-entrypoints\nVersion: 0\n")
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    return str(root)


def agent_env(root: Path, **extra: str) -> dict[str, str]:
    """Environment for an agent process: the entry points, plus *extra*.

    The other instrumentors installed here (tracetape's model clients, and
    OpenLLMetry & co. under ``opentelemetry-instrument``) are switched off:
    these agents make no model calls, and importing the SDKs they patch
    costs seconds per process.
    """
    ours = ENTRY_POINTS["opentelemetry_instrumentor"]
    others = {e.name for e in entry_points(group="opentelemetry_instrumentor") if e.name not in ours}
    path = [entry_point_dir(root), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {"PYTHONPATH": os.pathsep.join(path), "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": ",".join(sorted(others)),
            **extra}


def load(run_id: str, collector: object) -> Trajectory:
    """The run as stored, with every payload fetched while the store is open."""
    with replay.open_store(collector.sql) as store:  # type: ignore[attr-defined]
        trajectory = replay.load(run_id, store=store)
        trajectory.prefetch({role for step in trajectory for role in step.blobs})
    return trajectory
