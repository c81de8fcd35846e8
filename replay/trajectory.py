"""A run as an ordered list of typed steps, rebuilt from its span tree.

Steps are in ``tracetape.seq`` order, the order in which events started.
Spans that carry no sequence (plain OTel instrumentations, other languages)
are ordered by start time, then depth in the tree, then span id, so the
order is deterministic even where clocks tie.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import itertools
import json
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Mapping, NamedTuple, Protocol, Sequence, overload

from tracetape.schemas import attributes as A
from tracetape.schemas.errors import BlobError
from tracetape.schemas.events import EventKind

from .foreign import normalize

__all__ = ["Step", "SpanEvent", "RunInfo", "Trajectory", "BlobSource", "order_spans", "verified", "bulk", "steps_of",
           "events_of", "STEP_COLUMNS"]


class BlobSource(Protocol):
    """Where a trajectory's payload bytes come from: a store or a tape."""

    def blob(self, digest: str) -> bytes: ...

    def blobs(self, digests: Iterable[str]) -> Mapping[str, bytes]: ...


@contextlib.contextmanager
def bulk() -> Iterator[None]:
    """Pause the cyclic GC while building many small acyclic objects (rows, steps): it would rescan
    them again and again as they accumulate, a sixth of the time to load a large run."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def verified(digest: str, data: bytes) -> bytes:
    if hashlib.sha256(data).hexdigest() != digest:
        raise BlobError(f"blob {digest} is corrupt: its bytes do not match the hash")
    return data


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    agent: str = ""
    outcome: str = ""
    error: str = ""
    tags: tuple[str, ...] = ()
    start_ns: int = 0
    end_ns: int = 0
    event_count: int = 0
    error_count: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    parent_run_id: str = ""
    fork_step: int = 0
    service_name: str = ""


class SpanEvent(NamedTuple):
    """A timestamped event inside a span (an exception with its type, message and stack trace, or what another
    instrumentation adds); attribute values as text, as the store keeps them."""

    time_ns: int
    name: str
    attributes: Mapping[str, str]


@dataclass(slots=True)
class Step:
    """One event of a run. Payload bytes are fetched on first use and checked against their hash."""

    index: int
    seq: int
    kind: EventKind
    name: str
    span_id: str
    parent_span_id: str
    trace_id: str
    start_ns: int
    end_ns: int
    status: str
    status_message: str
    operation: str = ""
    provider: str = ""
    request_model: str = ""
    response_model: str = ""
    tool_name: str = ""
    tool_call_id: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    finish_reasons: tuple[str, ...] = ()
    blobs: dict[str, str] = field(default_factory=dict)
    blob_sizes: dict[str, int] = field(default_factory=dict)
    attributes: dict[str, str] = field(default_factory=dict)
    events: tuple[SpanEvent, ...] = ()
    _fetch: Callable[[str], bytes] | None = field(default=None, repr=False, compare=False)
    _cache: dict[str, bytes] = field(default_factory=dict, repr=False, compare=False)

    @property
    def duration_ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6

    @property
    def task(self) -> str:
        """Logical task path ("0", "0.2") the event ran in; empty for spans from outside tracetape."""
        return self.attributes.get(A.TASK, "")

    @property
    def boundary(self) -> bool:
        """A call across the boundary replay serves (it carries the request it asked)."""
        return "request" in self.blobs and self.kind is not EventKind.RUN

    @property
    def failed(self) -> bool:
        return self.status == "ERROR"

    def blob(self, role: str) -> bytes:
        """The exact bytes of payload *role* (``request``, ``response``, ``arguments``, ``result``, ...)."""
        if role not in self.blobs:
            raise BlobError(f"step {self.index} ({self.name}) has no {role!r} payload; it has {sorted(self.blobs)}")
        if role not in self._cache:
            if self._fetch is None:
                raise BlobError("this trajectory was loaded without access to its blobs")
            self._cache[role] = self._fetch(self.blobs[role])
        return self._cache[role]

    def json(self, role: str) -> Any:
        return json.loads(self.blob(role))


class Trajectory:
    """The steps of one run, in order: iterate, index (0-based), or filter."""

    def __init__(self, run: RunInfo, steps: list[Step], source: BlobSource | None = None) -> None:
        self.run = run
        self.steps = steps
        self.source = source

    def __len__(self) -> int:
        return len(self.steps)

    def __iter__(self) -> Iterator[Step]:
        return iter(self.steps)

    @overload
    def __getitem__(self, index: int) -> Step: ...
    @overload
    def __getitem__(self, index: slice) -> list[Step]: ...

    def __getitem__(self, index: int | slice) -> Step | list[Step]:
        return self.steps[index]

    def step(self, number: int) -> Step:
        """Step by its 1-based number, as printed by ``tracetape show``."""
        if not 1 <= number <= len(self.steps):
            raise IndexError(f"run {self.run.run_id} has steps 1..{len(self.steps)}, not {number}")
        return self.steps[number - 1]

    def filter(self, kind: EventKind | str | None = None, name: str | None = None) -> list[Step]:
        wanted = EventKind(kind) if kind is not None else None
        return [s for s in self.steps if (wanted is None or s.kind is wanted) and (name is None or
                                                                                    name in (s.name, s.tool_name))]

    @property
    def model_calls(self) -> list[Step]:
        return self.filter(EventKind.MODEL_CALL)

    @property
    def tool_calls(self) -> list[Step]:
        return self.filter(EventKind.TOOL_CALL)

    def in_task(self, task: str) -> list[Step]:
        """The steps of one task (thread / asyncio task), in order."""
        return [s for s in self.steps if s.task == task]

    def children(self, step: Step) -> list[Step]:
        """Steps whose span is a direct child of *step*'s span (e.g. the calls made inside a tool)."""
        return [s for s in self.steps if s.parent_span_id == step.span_id]

    def prefetch(self, roles: Iterable[str] = ("request", "response")) -> list[tuple[Step, str]]:
        """Fetch the payloads of these roles for every step at once (one query, not one per step).

        Returns the (step, role) pairs whose payload the source does not hold
        (dropped by the client, or sampled out when the run was recorded).
        """
        wanted = set(roles)
        pending = [(step, role) for step in self.steps for role in step.blobs
                   if role in wanted and role not in step._cache]
        if not pending:
            return []
        found = self.source.blobs({step.blobs[role] for step, role in pending}) if self.source is not None else {}
        for step, role in pending:
            if step.blobs[role] in found:
                step._cache[role] = found[step.blobs[role]]
        return [(step, role) for step, role in pending if role not in step._cache]


def _depths(spans: list[dict[str, Any]]) -> dict[str, int]:
    parents = {s["span_id"]: s["parent_span_id"] for s in spans}
    depths: dict[str, int] = {}
    for span_id in parents:
        depth, cursor, seen = 0, parents.get(span_id, ""), {span_id}
        while cursor in parents and cursor not in seen:
            seen.add(cursor)
            depth += 1
            cursor = parents[cursor]
        depths[span_id] = depth
    return depths


def order_spans(spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Sequenced spans by seq; any others by (start, depth, span id), after the sequenced ones' peers."""
    if all(s["seq"] for s in spans):  # a tracetape run: seq alone is the order (unique per run)
        return sorted(spans, key=lambda s: s["seq"])
    depths = _depths(spans)
    return sorted(spans, key=lambda s: (s["seq"] == 0, s["seq"], s["start_ns"], depths[s["span_id"]],
                                        s["span_id"]))


_KINDS = {kind.value: kind for kind in EventKind}
# The span row columns a Step is made of, in the order of Step's fields after ``index``.
STEP_COLUMNS = (
    "seq", "kind", "name", "span_id", "parent_span_id", "trace_id", "start_ns", "end_ns", "status_code",
    "status_message", "operation", "provider", "request_model", "response_model", "tool_name", "tool_call_id",
    "input_tokens", "output_tokens", "finish_reasons", "blobs", "blob_sizes", "attributes", "events",
)


def build(run: RunInfo, spans: list[dict[str, Any]], fetch: Callable[[str], bytes] | None,
          source: BlobSource | None = None) -> Trajectory:
    with bulk():
        steps = [_step(index, span, fetch) for index, span in enumerate(order_spans(spans), start=1)]
    return Trajectory(run, steps, source)


def events_of(rows: Iterable[Sequence[Any]]) -> tuple[SpanEvent, ...]:
    """Span events from (time_ns, name, attributes) rows, as stored and as written in tapes."""
    return tuple(SpanEvent(int(t), str(n), dict(a)) for t, n, a in rows)


def steps_of(columns: Sequence[Iterable[Any]], fetch: Callable[[str], bytes] | None) -> list[Step]:
    """Steps 1..N from the columns of STEP_COLUMNS, already in step order and typed as Step wants
    (kind an EventKind, finish reasons a tuple, events SpanEvents): one C-level pass, no row dicts."""
    return list(map(Step, itertools.count(1), *columns, itertools.repeat(fetch)))


def _step(index: int, span: dict[str, Any], fetch: Callable[[str], bytes] | None) -> Step:
    """A step of *span*; the row's maps are the step's own (rows are built fresh for each load)."""
    kind = _KINDS.get(span["kind"], EventKind.OTHER)
    if kind is EventKind.OTHER:
        span = normalize(span)
        kind = _KINDS.get(span["kind"], EventKind.OTHER)
    return Step(  # positionally, in field order: for 10,000 steps, far cheaper than by keyword
        index, span["seq"], kind, span["name"], span["span_id"], span["parent_span_id"], span["trace_id"],
        span["start_ns"], span["end_ns"], span["status_code"], span["status_message"], span["operation"],
        span["provider"], span["request_model"], span["response_model"], span["tool_name"], span["tool_call_id"],
        span["input_tokens"], span["output_tokens"], tuple(span["finish_reasons"]), span["blobs"],
        span["blob_sizes"], span["attributes"], events_of(span.get("events") or ()), fetch,
    )


def _json_list(text: str) -> tuple[str, ...]:
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        return (text,) if text else ()
    return tuple(str(v) for v in value) if isinstance(value, list) else (str(value),)


def _int(text: str) -> int:
    try:
        return int(text)
    except (TypeError, ValueError):
        return 0


def run_info(run_id: str, row: dict[str, Any] | None, spans: list[dict[str, Any]]) -> RunInfo:
    """Run metadata from its runs row, or derived from its run span (a tape, a run still being written),
    or from the spans alone (a trace from another instrumentation)."""
    if row is not None:
        return RunInfo(**{k: (tuple(v) if k == "tags" else v) for k, v in row.items() if k not in ("trace_id",)})
    root = next((s for s in spans if s["kind"] == EventKind.RUN.value), None)
    start = min((s["start_ns"] for s in spans), default=0)
    end = max((s["end_ns"] for s in spans), default=0)
    if root is None:
        # A tracetape run whose run span has not ended yet, or a trace from another instrumentation.
        tops = [s for s in spans if not s["parent_span_id"]]
        outcome = "unfinished" if any(s["seq"] for s in spans) else \
            "error" if any(s["status_code"] == "ERROR" for s in tops) else "ok"
        return RunInfo(run_id=run_id, agent=tops[0]["name"] if len(tops) == 1 else "", outcome=outcome,
                       start_ns=start, end_ns=end, event_count=len(spans),
                       error_count=sum(s["status_code"] == "ERROR" for s in spans),
                       input_tokens=sum(s["input_tokens"] for s in spans),
                       output_tokens=sum(s["output_tokens"] for s in spans),
                       service_name=spans[0]["service_name"] if spans else "")
    attrs = root["attributes"]
    return RunInfo(
        run_id=run_id,
        agent=attrs.get(A.GEN_AI_AGENT_NAME, ""),
        outcome=attrs.get(A.RUN_OUTCOME, "unfinished"),
        error=root["status_message"],
        tags=_json_list(attrs.get(A.RUN_TAGS, "")),
        start_ns=root["start_ns"], end_ns=root["end_ns"] or end,
        event_count=_int(attrs.get(A.RUN_EVENT_COUNT, "")) or len(spans),
        error_count=_int(attrs.get(A.RUN_ERROR_COUNT, "")),
        input_tokens=root["input_tokens"], output_tokens=root["output_tokens"],
        parent_run_id=attrs.get(A.RUN_PARENT_ID, ""),
        fork_step=_int(attrs.get(A.RUN_FORK_STEP, "")),
        service_name=root["service_name"],
    )
