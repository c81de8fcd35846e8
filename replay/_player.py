"""Deterministic replay: serve a recorded run's boundaries back to the code that made them.

The player is installed into the instrumentation's seam. Each boundary call
(model call, tool call, HTTP exchange, clock batch, ...) asks it first; it
finds the recorded call at the same place — the n-th call of this kind in
this logical task, so thread and asyncio interleavings do not matter — and
checks that the same thing is being asked (name and canonical request bytes,
see :mod:`.canonical`). A match is served: the caller rebuilds its result from
the recorded bytes and no live service is touched. Everything else is a
divergence, handled by the mode:

- ``strict``: raise :class:`DivergenceError` at the first one.
- ``observe``: record it and keep following the recording — the diverging
  call gets the response recorded at its place, so the run goes on along the
  recorded path and every later divergence is listed too. A call with nothing
  recorded at its place cannot be answered and raises.
- ``fork`` (at step N): serve steps 1..N as in strict, then go live; the run
  is recorded as a new run linked to its parent (``parent_run_id``, ``fork_step``).
- ``loose``: go live on a miss, recorded as a divergence.

When a recorded call is served, the calls recorded *inside* it (a model call
made by a tool's body) will not happen, so they are consumed with it.

Runs started under a player are runs of their own, linked to the recording:
``parent_run_id`` is the recorded run; ``fork_step`` is N for a fork and 0
for a replay (fork steps start at 1: step 1 is the run itself), and the run
span carries ``tracetape.replay.mode``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from enum import Enum
from typing import Any, Iterable

from tracetape.instrumentation import seam
from tracetape.schemas import attributes as A
from tracetape.schemas.errors import BlobError, ConfigError, DivergenceError, LiveNetworkBlocked
from tracetape.schemas.events import EventKind

from . import divergence as D
from .canonical import canonical_bytes, payload_changes, similarity
from .network import NetworkGuard
from .trajectory import Step, Trajectory

__all__ = ["Mode", "Player"]

_PREVIEW = 300
_KIND_VALUES = {kind: kind.value for kind in EventKind}
_CANDIDATES = 3
_CANDIDATE_POOL = 50


class Mode(str, Enum):
    STRICT = "strict"
    OBSERVE = "observe"
    FORK = "fork"
    LOOSE = "loose"


@dataclass(slots=True)
class _Slot:
    """A recorded boundary call waiting to be asked for."""

    step: Step
    request: bytes = b""  # the recorded request bytes, set once the payloads are fetched
    consumed: bool = False
    _canonical: bytes | None = None

    def canonical(self, ignore: frozenset[str]) -> bytes:
        if self._canonical is None:
            self._canonical = canonical_bytes(self.request, ignore)
        return self._canonical

    def served(self, same_bytes: bool) -> seam.Served:
        """The recorded outcome; *same_bytes*: the call asked with exactly the recorded request bytes."""
        step = self.step
        digest = step.blobs.get(seam.RESPONSE, "")
        response = step.blob(seam.RESPONSE) if digest else b""
        request_digest = step.blobs[seam.REQUEST] if same_bytes else ""
        if not step.failed and not step.attributes.get(A.ERROR_TYPE):
            return seam.Served(response, attributes=step.attributes, response_sha256=digest,
                               request_sha256=request_digest)
        error_type = step.attributes.get(A.ERROR_TYPE, "") or "Exception"
        message = step.status_message
        short = error_type.rsplit(".", 1)[-1]
        if message.startswith(f"{short}: "):
            message = message[len(short) + 2:]
        return seam.Served(response, error_type, message, step.attributes, digest, request_digest)


def _preview(data: bytes) -> str:
    text = data.decode("utf-8", "replace")
    return text if len(text) <= _PREVIEW else text[: _PREVIEW - 1] + "…"


class Player:
    """Serves one recorded run. Use through :func:`tracetape.replay.player`, or ``start()``/``stop()``."""

    def __init__(self, trajectory: Trajectory, mode: Mode | str = Mode.STRICT, *, fork_at: int | None = None,
                 allow: Iterable[str] = (), ignore: Iterable[str] = ()) -> None:
        self.mode = Mode(mode)
        if self.mode is Mode.FORK and (fork_at is None or fork_at < 1):
            raise ConfigError("fork mode needs fork_at: the last recorded step to serve (1-based, as shown by "
                             "`tracetape show`)")
        if self.mode is not Mode.FORK and fork_at is not None:
            raise ConfigError(f"fork_at only applies to mode 'fork', not {self.mode.value!r}")
        self.trajectory = trajectory
        self.fork_at = fork_at or 0
        self.ignore = frozenset(k.lower() for k in ignore)
        self.divergences: list[D.Divergence] = []
        self.served = 0  # calls answered from the recording
        self.live = 0  # calls that went live (past the fork point, or loose misses)
        self._runs: dict[str, None] = {}  # ids of the runs replayed under this player, in order
        self._lock = threading.Lock()
        self._went_live = False
        self._finished = False
        self._slots: dict[tuple[str, str], list[_Slot]] = {}
        self._cursor: dict[tuple[str, str], int] = {}
        self._asked: dict[tuple[str, str], int] = {}
        self._by_span: dict[str, _Slot] = {}
        self._children: dict[str, list[str]] = {}
        for step in trajectory:
            self._children.setdefault(step.parent_span_id, []).append(step.span_id)
            if step.boundary:
                slot = _Slot(step)
                self._slots.setdefault((step.task, step.kind.value), []).append(slot)
                self._by_span[step.span_id] = slot
        missing = [(step, role) for step, role in trajectory.prefetch((seam.REQUEST, seam.RESPONSE))
                   if step.boundary]
        if missing:
            listed = ", ".join(f"step {step.index} {role}" for step, role in missing[:5])
            raise BlobError(f"run {trajectory.run.run_id} cannot be replayed: {len(missing)} recorded payload(s) "
                            f"are not in the store ({listed}{', ...' if len(missing) > 5 else ''}); they were "
                            "dropped by the recording client or sampled out")
        for slot in self._by_span.values():
            slot.request = slot.step.blob(seam.REQUEST)
        self._allow = tuple(allow)
        self._guard: NetworkGuard | None = None

    # -- lifecycle ----------------------------------------------------------

    def start(self) -> "Player":
        seam.install(self)
        self._guard = NetworkGuard(self._connection, self._allow)
        self._guard.apply()
        return self

    def stop(self) -> None:
        """Uninstall; recorded calls never asked for become divergences (except past a fork point)."""
        if self._guard is not None:
            self._guard.undo()
            self._guard = None  # it refers back to the player: no cycle outlives the replay
        seam.uninstall(self)
        with self._lock:
            if self._finished:
                return
            self._finished = True
            # A strict replay stops at its first divergence; what it never reached after that is no news.
            unused = [] if self.mode is Mode.STRICT and self.divergences else self.unused()
        for slot in unused:
            self.divergences.append(D.Divergence(
                D.NOT_ASKED, slot.step.kind.value, slot.step.name, task=slot.step.task, step=slot.step.index,
                recorded_name=slot.step.name, recorded=_preview(slot.request), action="reported at the end"))

    def __enter__(self) -> "Player":
        return self.start()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.stop()
        if not isinstance(exc, DivergenceError):
            self.verify(exc)

    def verify(self, cause: BaseException | None = None) -> None:
        """Raise the first divergence of a strict replay, if there was one.

        For when the code under replay swallowed the error, turned a blocked
        connection into its own error, or skipped recorded calls: the
        divergence is the cause, so it is what the caller sees.
        """
        if self.mode is Mode.STRICT and self.divergences:
            first = self.divergences[0]
            raise DivergenceError(first.describe(), first) from cause

    @property
    def runs(self) -> list[str]:
        """Ids of the runs replayed under this player (the new runs, not the recorded one)."""
        return list(self._runs)

    def unused(self) -> list[_Slot]:
        return [slot for slots in self._slots.values() for slot in slots
                if not slot.consumed and not (self.mode is Mode.FORK and slot.step.index > self.fork_at)]

    def recorded(self, kind: EventKind) -> bool:
        return bool(self.trajectory.filter(kind))

    def lineage(self) -> seam.Lineage:
        return seam.Lineage(self.trajectory.run.run_id, self.fork_at if self.mode is Mode.FORK else 0,
                            self.mode.value)

    # -- the seam -------------------------------------------------------------

    def serve(self, kind: EventKind | str, name: str, request: bytes) -> seam.Served | None:
        run_id, task = seam.call_site()
        if not run_id:
            return None  # outside any run: nothing was recorded there to serve
        key = (task, _KIND_VALUES.get(kind) or str(kind))  # type: ignore[call-overload]
        with self._lock:
            if run_id not in self._runs:
                self._runs[run_id] = None
            slots = self._slots.get(key, ())
            cursor = self._cursor.get(key, 0)
            while cursor < len(slots) and slots[cursor].consumed:
                cursor += 1
            slot = slots[cursor] if cursor < len(slots) else None
            if slot is not None:
                slot.consumed = True
                self._cursor[key] = cursor + 1
            position = self._asked[key] = self._asked.get(key, 0) + 1
            past_fork = slot is not None and self.mode is Mode.FORK and slot.step.index > self.fork_at
            if slot is not None and not past_fork and request == slot.request and slot.step.name == name:
                # The usual case, the very bytes recorded: served without a second trip through the lock.
                self._consume_inside(slot.step.span_id)
                self.served += 1
                return slot.served(True)
        if slot is None:
            if self.mode is Mode.FORK:
                return self._go_live()
            return self._diverge(self._not_recorded(key, name, request, position), None)
        if past_fork:
            return self._go_live()
        if slot.step.name == name and canonical_bytes(request, self.ignore) == slot.canonical(self.ignore):
            return self._serve(slot)
        return self._diverge(self._differs(key, name, request, position, slot), slot)

    def _serve(self, slot: _Slot) -> seam.Served:
        with self._lock:
            self._consume_inside(slot.step.span_id)
            self.served += 1
        return slot.served(False)  # the very bytes recorded are served in serve() itself

    def _go_live(self) -> None:
        with self._lock:
            self.live += 1
            self._went_live = True
        return None

    def _consume_inside(self, span_id: str) -> None:
        """Mark the calls recorded inside a served call as done: they will not happen (lock held)."""
        pending = list(self._children.get(span_id, ()))
        while pending:
            child = pending.pop()
            slot = self._by_span.get(child)
            if slot is not None:
                slot.consumed = True
            pending.extend(self._children.get(child, ()))

    def _diverge(self, found: D.Divergence, slot: _Slot | None) -> seam.Served | None:
        if self.mode is Mode.LOOSE:
            self._record(found, "went live")
            return self._go_live()
        if self.mode is Mode.OBSERVE and slot is not None:
            self._record(found, "served the recording at this place and went on")
            return self._serve(slot)
        found = self._record(found, "raised")
        raise DivergenceError(found.describe(), found)

    def _record(self, found: D.Divergence, action: str) -> D.Divergence:
        found = D.Divergence(**{**found.__dict__, "action": action})
        with self._lock:
            self.divergences.append(found)
        return found

    def _candidates(self, kind: str, name: str, request: bytes, exclude: _Slot | None) -> tuple[D.Candidate, ...]:
        pool = [s for (_task, k), slots in self._slots.items() if k == kind for s in slots if s is not exclude]
        pool.sort(key=lambda s: (s.step.name != name, s.consumed))
        asked = canonical_bytes(request, self.ignore)
        scored = [D.Candidate(s.step.index, s.step.task, s.step.name, similarity(s.canonical(self.ignore), asked))
                  for s in pool[:_CANDIDATE_POOL]]
        scored.sort(key=lambda c: (-c.similarity, c.step))
        return tuple(c for c in scored[:_CANDIDATES] if c.similarity > 0)

    def _not_recorded(self, key: tuple[str, str], name: str, request: bytes, position: int) -> D.Divergence:
        task, kind = key
        return D.Divergence(D.NOT_RECORDED, kind, name, task=task, position=position, asked=_preview(request),
                            candidates=self._candidates(kind, name, request, None))

    def _differs(self, key: tuple[str, str], name: str, request: bytes, position: int, slot: _Slot
                 ) -> D.Divergence:
        task, kind = key
        return D.Divergence(
            D.REQUEST_DIFFERS if slot.step.name == name else D.NAME_DIFFERS, kind, name, task=task,
            position=position, step=slot.step.index, recorded_name=slot.step.name, recorded=_preview(slot.request),
            asked=_preview(request), diff=tuple(payload_changes(slot.request, request, self.ignore)),
            candidates=self._candidates(kind, name, request, slot))

    # -- the network guard ----------------------------------------------------

    def _connection(self, host: str, port: int) -> None:
        """A socket is about to connect to host:port: pass only where this replay went live."""
        if self._went_live and self.mode in (Mode.FORK, Mode.LOOSE):
            return
        run_id, task = seam.call_site()
        found = D.Divergence(D.NETWORK, "network", f"connect {host}:{port}", task=task,
                             asked=f"an outbound connection to {host}:{port} that no recorded call serves")
        if self.mode is Mode.LOOSE:
            self._record(found, "went live")
            return
        found = self._record(found, "blocked the connection")
        raise LiveNetworkBlocked(found.describe(), found)

    # -- the outcome ------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "recorded_run": self.trajectory.run.run_id, "mode": self.mode.value, "fork_at": self.fork_at or None,
            "runs": list(self.runs), "served": self.served, "live": self.live,
            "divergences": [d.to_dict() for d in self.divergences],
        }

    def report(self) -> str:
        head = (f"replay of {self.trajectory.run.run_id} ({self.mode.value}"
                + (f" at step {self.fork_at}" if self.mode is Mode.FORK else "") + f"): {self.served} served, "
                f"{self.live} live, {len(self.divergences)} divergence(s)"
                + (f"; replay run {', '.join(self.runs)}" if self.runs else ""))
        return "\n".join([head, *(d.describe() for d in self.divergences)])
