"""What a divergence is, and how it reads.

A divergence is the replayed code asking for something the recording does
not hold at that place: a request that differs from the recorded one, a call
the recording never made, a recorded call never asked for, or a live
connection nothing could serve. It names the recorded step (as numbered by
``tracetape show``), what was recorded and what was asked as a field-by-field
diff, and the nearest recorded candidates, so the first line of the error is
usually enough to see what changed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["Divergence", "Candidate", "REQUEST_DIFFERS", "NOT_RECORDED", "NOT_ASKED", "NETWORK"]

REQUEST_DIFFERS = "request differs"
NAME_DIFFERS = "different call"
NOT_RECORDED = "not recorded"
NOT_ASKED = "recorded call never made"
NETWORK = "live connection"


@dataclass(frozen=True)
class Candidate:
    """A recorded call that resembles the one asked."""

    step: int
    task: str
    name: str
    similarity: float

    def describe(self) -> str:
        return f"step {self.step} ({self.name}, task {self.task or '-'}): {self.similarity:.0%} similar"


@dataclass(frozen=True)
class Divergence:
    reason: str  # one of the constants above
    kind: str  # event kind (model_call, tool_call, ...) or "network"
    name: str  # what was asked (span name, or "connect host:port")
    task: str = ""
    position: int = 0  # 1-based: the n-th call of this kind in this task
    step: int | None = None  # recorded step number, when there is one at this place
    recorded_name: str = ""
    recorded: str = ""  # preview of the recorded request
    asked: str = ""  # preview of the asked request
    diff: tuple[str, ...] = ()  # readable per-field differences, recorded → asked
    candidates: tuple[Candidate, ...] = field(default_factory=tuple)
    action: str = ""  # what the player did: raised, served the recording, went live, blocked

    def headline(self) -> str:
        where = f"step {self.step}" if self.step is not None else "a call past the recording"
        place = f"task {self.task or '-'}, {_ordinal(self.position)} {self.kind} of the task" if self.position \
            else f"task {self.task or '-'}"
        return f"replay diverged at {where} ({self.kind} {self.name!r}; {place}): {self.reason}"

    def describe(self) -> str:
        lines = [self.headline()]
        if self.recorded_name and self.recorded_name != self.name:
            lines.append(f"  recorded: {self.recorded_name!r}; asked: {self.name!r}")
        if self.diff:
            lines.append("  recorded → asked:")
            lines += [f"    {line}" for line in self.diff]
        elif self.asked and self.reason == NOT_RECORDED:
            lines.append(f"  asked: {self.asked}")
        elif self.recorded and self.reason == NOT_ASKED:
            lines.append(f"  recorded: {self.recorded}")
        if self.candidates:
            lines.append("  nearest recorded candidates:")
            lines += [f"    {c.describe()}" for c in self.candidates]
        if self.action:
            lines.append(f"  replay {self.action}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["diff"] = list(self.diff)
        data["candidates"] = [asdict(c) for c in self.candidates]
        return data


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"
