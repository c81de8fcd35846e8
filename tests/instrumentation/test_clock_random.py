"""Clock, random and uuid values: recorded compactly per task, replayed exactly; never our own, never
infrastructure's; outside runs the patched functions behave as the originals."""

from __future__ import annotations

import copy
import datetime
import pickle
import random
import time
import uuid

from determinism_helpers import AGENTS, NO_CLIENTS, collector, shared_collector  # noqa: F401 - fixtures
from tracetape import replay
from tracetape.instrumentation._values import BATCH_VALUES, decode_batch
from tracetape.instrumentation.clock import ClockInstrumentor
from tracetape.instrumentation.randomness import RandomInstrumentor
from tracetape.schemas.events import EventKind

AGENT = AGENTS / "determinism_values.py"
VALUE_KINDS = (EventKind.CLOCK, EventKind.RANDOM, EventKind.UUID)


def _values(steps, name: str) -> list:
    return [v for s in steps if s.name == name for v in decode_batch(s.blob("response"))]


def test_values_are_recorded_compactly_per_task_and_replay_exactly(collector, agent):
    env = {**NO_CLIENTS, "TRACETAPE_CLOCK_DATETIME": "1"}
    recorded = agent(AGENT, collector, extra_env=env)
    observed = recorded["observed"]
    with replay.open_store(collector.sql) as store:
        trajectory = replay.load(recorded["run_id"], store=store)
        run = trajectory[0]
        values = [s for s in trajectory if s.kind in VALUE_KINDS]

        # Compact: ~1200 reads and draws are a few dozen events, one per batch of a source in a task.
        assert len(values) < 50
        main = [s for s in values if s.task == "0" and s.parent_span_id == run.span_id]
        ticks = [s for s in main if s.name == "time.time"]
        reads = 1 + len(observed["ticks"])
        assert [int(s.attributes["tracetape.values.count"]) for s in ticks] == [BATCH_VALUES, reads - BATCH_VALUES]
        assert _values(ticks, "time.time") == [observed["main.time"], *observed["ticks"]]
        assert _values(main, "uuid.uuid4") == [uuid.UUID(observed["main.uuid4"]).hex]
        assert _values(main, "os.urandom") == [observed["main.urandom"], observed["main.token"]]
        assert observed["main.random"] == _values(main, "random.random")[0]
        assert _values(main, "datetime.now") == [observed["now"], observed["now_utc"]]

        # Values drawn inside a tool call are a batch of their own, under the tool's span.
        [tool] = trajectory.filter(EventKind.TOOL_CALL)
        inside = [s for s in values if s.parent_span_id == tool.span_id]
        assert {s.name for s in inside} == {"random.getrandbits", "time.time"}

        # Each thread and asyncio task has its own values.
        assert {s.task for s in values} == {"0", "0.1", "0.2", "0.3"}
        assert _values([s for s in values if s.task == "0.1"], "time.time_ns") == [observed["thread.time_ns"]]

        # Only the agent's own draws: the asyncio loop's clock, logging timestamps, span ids, temporary
        # file names and our own uuids are not recorded (the same code draws monotonic exactly 4 times).
        assert len(_values(values, "time.monotonic")) == 4
        assert len(_values(values, "random.seed")) == 4  # the agent's own Random(), not tempfile's
        assert len(_values(values, "time.time")) == reads + 1 + 1 + 2

    replayed = agent(AGENT, collector, "--replay", recorded["run_id"], "--store", collector.sql, extra_env=env)
    assert replayed["divergences"] == []
    assert replayed["observed"] == observed
    assert replayed["outside"] != recorded["outside"], "outside runs nothing is served"
    with replay.open_store(collector.sql) as store:
        again = replay.load(replayed["run_id"], store=store)
    # Spans keep the real clock while the code is served recorded times.
    assert again.run.start_ns > max(observed["ticks"]) * 1e9
    assert again.run.parent_run_id == recorded["run_id"]


def test_outside_runs_the_patched_functions_behave_as_the_originals():
    originals = (time.time, time.monotonic, random.random, random.getrandbits, uuid.uuid4)
    clock, rand = ClockInstrumentor(), RandomInstrumentor()
    clock.instrument()
    rand.instrument()
    try:
        assert time.time is not originals[0] and random.random is not originals[2]
        before = originals[0]()
        assert before <= time.time() <= originals[0]()
        random.seed(1234)
        seeded = [random.random(), random.getrandbits(40), random.choice("abcdef")]
        reference = random.Random(1234)
        assert seeded == [reference.random(), reference.getrandbits(40), reference.choice("abcdef")]
        assert uuid.uuid4().version == 4
    finally:
        rand.uninstrument()
        clock.uninstrument()
    assert (time.time, time.monotonic, random.random, random.getrandbits, uuid.uuid4) == originals
    assert "random" not in vars(random._inst)


def test_datetime_stand_in_is_invisible_to_ordinary_code():
    real = datetime.datetime
    clock = ClockInstrumentor()
    clock.instrument(datetime=True)
    try:
        stand_in = datetime.datetime
        assert stand_in is not real
        now = datetime.datetime.now()
        built = datetime.datetime(2024, 5, 6, 7, 8, 9, tzinfo=datetime.timezone.utc)
        assert type(now) is real and type(built) is real
        assert isinstance(now, datetime.datetime) and issubclass(real, datetime.datetime)
        assert not isinstance(datetime.date(2024, 1, 1), datetime.datetime)
        assert type(datetime.datetime.fromisoformat("2024-01-01T00:00:00")) is real
        assert pickle.loads(pickle.dumps(built)) == built and copy.deepcopy(built) == built
        assert datetime.datetime.now(datetime.timezone.utc).tzinfo is datetime.timezone.utc

        class Mine(datetime.datetime):
            pass

        assert type(Mine.now()) is Mine and not isinstance(now, Mine)
    finally:
        clock.uninstrument()
    assert datetime.datetime is real
    assert pickle.loads(pickle.dumps(real(2024, 1, 1))) == real(2024, 1, 1)
