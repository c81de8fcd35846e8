"""A run as an ordered list of typed steps, rebuilt from its span tree.

Steps are in ``tracetape.seq`` order, the order in which events started.
Spans that carry no sequence (plain OTel instrumentations, other languages)
are ordered by start time, then depth in the tree, then span id, so the
order is deterministic even where clocks tie.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, overload

from tracetape.schemas import attributes as A
from tracetape.schemas.errors import BlobError
from tracetape.schemas.events import EventKind

__all__ = ["Step", "RunInfo", "Trajectory", "order_spans"]


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


@dataclass
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
    _fetch: Callable[[str], bytes] | None = field(default=None, repr=False, compare=False)
    _cache: dict[str, bytes] = field(default_factory=dict, repr=False, compare=False)

    @property
    def duration_ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6

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

    def __init__(self, run: RunInfo, steps: list[Step]) -> None:
        self.run = run
        self.steps = steps

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
    depths = _depths(spans)
    return sorted(spans, key=lambda s: (s["seq"] == 0, s["seq"], s["start_ns"], depths[s["span_id"]],
                                        s["span_id"]))


def build(run: RunInfo, spans: list[dict[str, Any]], fetch: Callable[[str], bytes] | None) -> Trajectory:
    steps = []
    for index, span in enumerate(order_spans(spans), start=1):
        try:
            kind = EventKind(span["kind"])
        except ValueError:
            kind = EventKind.OTHER
        steps.append(Step(
            index=index, seq=span["seq"], kind=kind, name=span["name"], span_id=span["span_id"],
            parent_span_id=span["parent_span_id"], trace_id=span["trace_id"], start_ns=span["start_ns"],
            end_ns=span["end_ns"], status=span["status_code"], status_message=span["status_message"],
            operation=span["operation"], provider=span["provider"], request_model=span["request_model"],
            response_model=span["response_model"], tool_name=span["tool_name"], tool_call_id=span["tool_call_id"],
            input_tokens=span["input_tokens"], output_tokens=span["output_tokens"],
            finish_reasons=tuple(span["finish_reasons"]), blobs=dict(span["blobs"]),
            blob_sizes=dict(span["blob_sizes"]), attributes=dict(span["attributes"]), _fetch=fetch,
        ))
    return Trajectory(run, steps)


def run_info(run_id: str, row: dict[str, Any] | None, spans: list[dict[str, Any]]) -> RunInfo:
    """Run metadata from its runs row, or derived from spans when the run never finished."""
    if row is not None:
        return RunInfo(**{k: (tuple(v) if k == "tags" else v) for k, v in row.items() if k not in ("trace_id",)})
    root = next((s for s in spans if s["kind"] == EventKind.RUN.value), None)
    return RunInfo(
        run_id=run_id,
        agent=(root or {}).get("attributes", {}).get(A.GEN_AI_AGENT_NAME, ""),
        outcome="unfinished",
        start_ns=min((s["start_ns"] for s in spans), default=0),
        end_ns=max((s["end_ns"] for s in spans), default=0),
        event_count=len(spans),
    )
