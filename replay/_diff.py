"""Compare two runs event by event: what changed, where it first changed, and by how much.

Steps are aligned the way replay matches them: within each logical task, in
order, by kind and name (a longest-common-subsequence alignment, so one extra
tool call reads as one addition rather than shifting everything after it).
Aligned pairs are then compared by content — canonical request and response
payloads (see :mod:`.canonical`; for model responses the per-call id and
timestamp are ignored too) and the outcome — and the differences are reported
field by field (``request.messages[3].content``, ``response.sky``). A fork and
its parent are identical up to the fork step, so the first divergence of a
fork is the step after it.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from typing import Any

from tracetape.schemas import attributes as A
from tracetape.schemas.events import EventKind

from .canonical import RESPONSE_VOLATILE, canonical_bytes, payload_changes
from .trajectory import RunInfo, Step, Trajectory

__all__ = ["Diff", "Entry", "compare"]

SAME, CHANGED, ADDED, REMOVED = "same", "changed", "added", "removed"
_MARKS = {SAME: "=", CHANGED: "~", ADDED: "+", REMOVED: "-"}
# Without payloads (spans from other instrumentations), these attributes carry the content.
_CONTENT_ATTRIBUTES = (A.GEN_AI_INPUT_MESSAGES, A.GEN_AI_OUTPUT_MESSAGES, A.GEN_AI_TOOL_CALL_ARGUMENTS,
                       A.GEN_AI_TOOL_CALL_RESULT, A.ERROR_TYPE)


@dataclass
class Entry:
    """One aligned position: the step in each run (None where a run has no such step) and what differs."""

    status: str
    task: str
    a: Step | None
    b: Step | None
    changes: list[str] = field(default_factory=list)

    @property
    def step(self) -> Step:
        return self.a if self.a is not None else self.b  # type: ignore[return-value]

    def describe(self) -> str:
        where = f"step {self.a.index if self.a else '-'} / {self.b.index if self.b else '-'}"
        return f"{where}: {self.status} {self.step.kind.value} {self.step.name!r} (task {self.task or '-'})"

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "task": self.task, "kind": self.step.kind.value, "name": self.step.name,
                "a_step": self.a.index if self.a else None, "b_step": self.b.index if self.b else None,
                "changes": self.changes}


def _counts(t: Trajectory) -> dict[str, Any]:
    run = t.run
    return {
        "run_id": run.run_id, "agent": run.agent, "outcome": run.outcome, "steps": len(t),
        "model_calls": len(t.model_calls), "tool_calls": len(t.tool_calls),
        "input_tokens": run.input_tokens or sum(s.input_tokens for s in t if s.kind is not EventKind.RUN),
        "output_tokens": run.output_tokens or sum(s.output_tokens for s in t if s.kind is not EventKind.RUN),
        "errors": sum(s.failed for s in t if s.kind is not EventKind.RUN),
        "duration_ms": round((run.end_ns - run.start_ns) / 1e6, 3),
        "parent_run_id": run.parent_run_id, "fork_step": run.fork_step,
    }


@dataclass
class Diff:
    a: Trajectory
    b: Trajectory
    entries: list[Entry]

    @property
    def first_divergence(self) -> Entry | None:
        return next((e for e in self.entries if e.status != SAME), None)

    @property
    def identical(self) -> bool:
        return self.first_divergence is None

    def summary(self) -> dict[str, Any]:
        tally = {status: sum(e.status == status for e in self.entries) for status in (SAME, CHANGED, ADDED, REMOVED)}
        return {"a": _counts(self.a), "b": _counts(self.b), "aligned": tally}

    def to_dict(self) -> dict[str, Any]:
        first = self.first_divergence
        return {"summary": self.summary(), "first_divergence": first.to_dict() if first else None,
                "entries": [e.to_dict() for e in self.entries]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False)

    def text(self, all_steps: bool = True) -> str:
        summary = self.summary()
        a, b = summary["a"], summary["b"]
        lines = [f"--- a: run {a['run_id']}  agent {a['agent'] or '-'}  outcome {a['outcome']}",
                 f"+++ b: run {b['run_id']}  agent {b['agent'] or '-'}  outcome {b['outcome']}"
                 + (f"  (forked from {b['parent_run_id']} at step {b['fork_step']})" if b["fork_step"] else
                    f"  (replay of {b['parent_run_id']})" if b["parent_run_id"] else "")]
        for label, key in (("steps", "steps"), ("model calls", "model_calls"), ("tool calls", "tool_calls"),
                           ("input tokens", "input_tokens"), ("output tokens", "output_tokens"),
                           ("errors", "errors"), ("outcome", "outcome")):
            mark = " " if a[key] == b[key] else "*"
            lines.append(f" {mark} {label:<14} {a[key]!s:>10} {b[key]!s:>10}")
        tally = summary["aligned"]
        lines.append(f"aligned: {tally[SAME]} same, {tally[CHANGED]} changed, {tally[ADDED]} only in b, "
                     f"{tally[REMOVED]} only in a")
        first = self.first_divergence
        if first is None:
            lines.append("no divergence: the runs match event for event")
        else:
            lines.append(f"first divergence at {first.describe()}")
            lines += [f"    {change}" for change in first.changes]
        if all_steps:
            lines.append(f"{'a':>5} {'b':>5}   {'kind':<10} name")
            for entry in self.entries:
                lines.append(f"{entry.a.index if entry.a else '':>5} {entry.b.index if entry.b else '':>5} "
                             f"{_MARKS[entry.status]} {entry.step.kind.value:<10} {entry.step.name}")
                if entry is not first:
                    lines += [f"{'':>16}{change}" for change in entry.changes]
        return "\n".join(lines)


def _error(step: Step) -> str:
    return f"{step.status} {step.attributes.get(A.ERROR_TYPE, '')} {step.status_message}".strip()


def _content_changes(x: Step, y: Step) -> list[str]:
    if x.kind is EventKind.RUN:
        return [] if x.name == y.name else [f"name: {x.name!r} → {y.name!r}"]
    found: list[str] = []
    if x.name != y.name:
        found.append(f"name: {x.name!r} → {y.name!r}")
    roles = sorted(set(x.blobs) | set(y.blobs))
    for role in roles:
        if x.blobs.get(role) == y.blobs.get(role):
            continue
        if role not in x.blobs or role not in y.blobs:
            found.append(f"{role}: {'(absent)' if role not in x.blobs else 'recorded'} → "
                         f"{'(absent)' if role not in y.blobs else 'recorded'}")
            continue
        drop = RESPONSE_VOLATILE if role == "response" and x.kind is EventKind.MODEL_CALL else ()
        before, after = x.blob(role), y.blob(role)
        if canonical_bytes(before, drop_top=drop) != canonical_bytes(after, drop_top=drop):
            found += payload_changes(before, after, drop_top=drop, label=role)
    if not roles:
        for key in _CONTENT_ATTRIBUTES:
            if x.attributes.get(key, "") != y.attributes.get(key, ""):
                found.append(f"{key}: {x.attributes.get(key, '(absent)')!r} → {y.attributes.get(key, '(absent)')!r}")
    if (x.status == "ERROR") != (y.status == "ERROR") or (x.failed and _error(x) != _error(y)):
        found.append(f"outcome: {_error(x)!r} → {_error(y)!r}")
    return found


def _align_task(task: str, xs: list[Step], ys: list[Step]) -> list[tuple[float, Entry]]:
    """Entries of one task with sort keys that interleave them into the runs' step order."""
    matcher = difflib.SequenceMatcher(None, [(s.kind, s.name) for s in xs], [(s.kind, s.name) for s in ys],
                                      autojunk=False)
    keyed: list[tuple[float, Entry]] = []
    last = 0.0
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        pairs = min(i2 - i1, j2 - j1) if tag == "replace" else (i2 - i1 if tag == "equal" else 0)
        for k in range(pairs):
            x, y = xs[i1 + k], ys[j1 + k]
            changes = _content_changes(x, y)
            last = float(x.index)
            keyed.append((last, Entry(CHANGED if changes else SAME, task, x, y, changes)))
        for x in xs[i1 + pairs:i2]:
            last = float(x.index)
            keyed.append((last, Entry(REMOVED, task, x, None)))
        for n, y in enumerate(ys[j1 + pairs:j2], start=1):
            keyed.append((last + n / (j2 - j1 + 1), Entry(ADDED, task, None, y)))
    return keyed


def compare(a: Trajectory, b: Trajectory) -> Diff:
    """The aligned comparison of two trajectories (see the module docstring)."""
    for t in (a, b):
        t.prefetch()
    by_task: dict[str, tuple[list[Step], list[Step]]] = {}
    for side, t in enumerate((a, b)):
        for step in t:
            by_task.setdefault(step.task, ([], []))[side].append(step)
    keyed: list[tuple[float, Entry]] = []
    for task in sorted(by_task):
        keyed += _align_task(task, *by_task[task])
    keyed.sort(key=lambda item: (item[0], item[1].b.index if item[1].b else 0))
    return Diff(a, b, [entry for _key, entry in keyed])
