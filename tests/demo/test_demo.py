"""README command 1, ``tracetape demo``: record, store, read back, then replay with zero live calls."""

from __future__ import annotations

import re


def test_demo_records_reads_back_and_replays_without_live_calls(cli) -> None:  # type: ignore[no-untyped-def]
    done = cli("demo", timeout=240)
    assert done.returncode == 0, done.stderr
    assert re.search(r"read back from the store \((\d+) steps\)", done.stdout)
    assert "agent answered: 'The weather in Lisbon" in done.stdout and "(2 model calls to the mock)" in done.stdout
    assert "replayed strictly from the store: answer identical, 0 live model calls, 0 divergences" in done.stdout
