"""The shipped dashboard queries run against a live store and count what was recorded."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import clickhouse_connect
import pytest

DEPLOY = Path(__file__).parents[2] / "deploy"


@pytest.fixture
def recorded(collector, mock_openai, agent):
    for city in ("Lisbon", "Tokyo"):
        agent("tracetape.demo.agent", collector, f"What's the weather in {city}?", mock=mock_openai)
    client = clickhouse_connect.get_client(host="127.0.0.1", port=int(collector.sql.rsplit(":", 1)[1]))
    yield client
    client.close()


def _run(client, name: str) -> list[dict]:
    result = client.query((DEPLOY / "dashboards" / name).read_text(), parameters={"project": "default"})
    return [dict(zip(result.column_names, row)) for row in result.result_rows]


def test_dashboards_report_the_recorded_runs(recorded):
    overview = _run(recorded, "runs_overview.sql")
    assert [(r["agent"], r["ok"], r["errors"]) for r in overview] == [("weather-agent", 2, 0)]
    assert overview[0]["input_tokens"] > 0

    latency = _run(recorded, "model_latency.sql")
    assert [(r["request_model"], r["calls"], r["errors"]) for r in latency] == [("gpt-4o", 4, 0)]
    assert 0 < latency[0]["p50_ms"] <= latency[0]["p99_ms"]

    tools = _run(recorded, "tool_errors.sql")
    assert [(r["tool_name"], r["calls"], r["errors"]) for r in tools] == [("get_weather", 2, 0)]


def test_image_copies_every_package_folder():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    copied = set(re.findall(r"^COPY (\S+) ", dockerfile, flags=re.MULTILINE))
    package_dirs = tomllib.loads((DEPLOY.parent / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    top_level = {path.split("/")[0] for path in package_dirs.values()}
    assert top_level <= copied, f"Dockerfile misses {sorted(top_level - copied)}"
