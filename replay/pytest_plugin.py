"""pytest plugin: agent regression tests replayed from tapes, at zero API cost.

Mark a test and it runs against a tape::

    @pytest.mark.tracetape                       # tapes/<module>/<test>.tape next to the test file
    def test_weather_agent():
        assert "Tokyo" in run_my_agent("What's the weather in Tokyo?")

Record modes, as in VCR.py (``record=`` on the marker, or ``--tracetape-record``
for the whole session):

- ``once`` (default): record when the tape is missing, replay strictly otherwise;
- ``none``: replay only; a missing tape is an error (for CI);
- ``all``: always record live, overwriting the tape;
- ``new``: replay what matches, go live for what the tape lacks, and rewrite
  the tape with the new run if anything went live.

Recording happens in process (:class:`TapeRecorder`, no collector needed) and
keeps the tape only when the test passed, so a failing run never becomes the
reference. Replays are strict unless the marker says ``mode="observe"``; the
``tracetape_tape`` fixture gives the test the session (its player or recorder).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Iterator

import pytest

__all__ = ["RecordMode", "TapeSession"]

MARKER = "tracetape"


class RecordMode(str, Enum):
    ONCE = "once"
    NONE = "none"
    ALL = "all"
    NEW = "new"


@dataclass
class TapeSession:
    """What the marked test runs under: its tape, and the player (replaying) or recorder (recording)."""

    path: Path
    record: RecordMode
    player: Any = None
    recorder: Any = None

    @property
    def recording(self) -> bool:
        return self.player is None


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("tracetape").addoption(
        "--tracetape-record", choices=[m.value for m in RecordMode], default=None,
        help="record mode for every test marked tracetape (overrides the markers)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{MARKER}(tape=None, record='once', mode='strict', allow=(), ignore=()): run the test against "
                   "a tracetape tape, recorded when missing (record modes: once, none, all, new)")


_PASSED = pytest.StashKey[bool]()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.stash[_PASSED] = report.passed


def _tape_path(request: pytest.FixtureRequest, given: str | None) -> Path:
    base = Path(request.node.path).parent
    if given:
        return (base / given).resolve()
    name = re.sub(r"[^\w.-]+", "_", request.node.name).strip("_")
    return base / "tapes" / Path(request.node.path).stem / f"{name}.tape"


@pytest.fixture
def tracetape_tape(request: pytest.FixtureRequest) -> Iterator[TapeSession]:
    """Replay (or record) the test's tape around it; see the module docstring for the marker's options."""
    import tracetape
    from tracetape.replay import Mode, player
    from tracetape.replay.recorder import TapeRecorder

    marker = request.node.get_closest_marker(MARKER)
    options: dict[str, Any] = dict(marker.kwargs) if marker is not None else {}
    path = _tape_path(request, options.get("tape") or (marker.args[0] if marker is not None and marker.args else None))
    record = RecordMode(request.config.getoption("tracetape_record") or options.get("record", RecordMode.ONCE))
    instrumentation = tracetape.instrument()

    if record is RecordMode.ALL or (record is RecordMode.ONCE and not path.exists()):
        with TapeRecorder(instrumentation) as recorder:
            yield TapeSession(path, record, recorder=recorder)
        if request.node.stash.get(_PASSED, False):
            recorder.write(path)
        return
    if not path.exists():
        pytest.fail(f"no tape at {path}, and record mode {record.value!r} does not record one "
                    "(run once with --tracetape-record=once)", pytrace=False)
    mode = Mode.LOOSE if record is RecordMode.NEW else Mode(options.get("mode", Mode.STRICT))
    replaying = player(path, mode, allow=options.get("allow", ()), ignore=options.get("ignore", ())).start()
    recorder = TapeRecorder(instrumentation).start() if record is RecordMode.NEW else None
    try:
        yield TapeSession(path, record, player=replaying, recorder=recorder)
    finally:
        if recorder is not None:
            recorder.stop()
        replaying.stop()
    if request.node.stash.get(_PASSED, False):  # a failed test already reported what went wrong
        replaying.verify()  # divergences the test swallowed still fail it
        if recorder is not None and (replaying.live or replaying.divergences):
            recorder.write(path)


@pytest.fixture(autouse=True)
def _tracetape_marked(request: pytest.FixtureRequest) -> None:
    """Marked tests get their tape without asking for the fixture."""
    if request.node.get_closest_marker(MARKER) is not None:
        request.getfixturevalue("tracetape_tape")
