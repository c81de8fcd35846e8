"""The one seam between capture and replay.

Every boundary the instrumentation records — a model call, a tool call, an
HTTP exchange, a file read, a clock read — asks :func:`serve` before it does
the live thing. While recording, no player is installed and ``serve`` returns
``None``: the call goes live and its outcome is recorded. During replay,
``tracetape.replay`` installs a player that returns the recorded outcome
(``Served``) instead, or ``None`` to go live (past a fork point, or a miss in
``loose`` mode), or raises a divergence error (``strict``).

Every boundary event therefore records two payloads with fixed roles:
``request`` — canonical bytes of what was asked (the player fingerprints them)
and ``response`` — the bytes from which the result is rebuilt. Decoding a
``Served`` back into the value the caller expects is the patch's job; the
player only matches and hands back bytes.

Players match a call by its position in its own task, so they ask
:func:`call_site` where the call comes from. A player may also say how runs
started under it are linked to the recording (``lineage()``: a replay or a
fork of a parent run); ``tracetape.run()`` stamps that on the run.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Mapping, Protocol

from tracetape.schemas.events import EventKind

from ._runs import current_run
from ._tasks import current_task_path

__all__ = ["Served", "Player", "Lineage", "serve", "install", "uninstall", "active", "call_site", "lineage", "recorded",
           "REQUEST", "RESPONSE"]

REQUEST = "request"
RESPONSE = "response"


@dataclass(frozen=True)
class Served:
    """A recorded outcome: the response bytes, or the error the call raised.

    ``response_sha256`` is the recorded hash of ``response``: those bytes were
    redacted and hashed when they were recorded, so the replay run can record
    them under that hash as they are, without scanning or hashing them again.
    ``request_sha256`` is the recorded hash of the request when the call asked
    with exactly the recorded bytes (empty when it matched only canonically).
    """

    response: bytes = b""
    error_type: str = ""  # qualified name of the exception the recorded call raised, if any
    error_message: str = ""
    attributes: Mapping[str, str] = field(default_factory=dict)  # other recorded span attributes
    response_sha256: str = ""  # empty when nothing was recorded as the response
    request_sha256: str = ""


@dataclass(frozen=True)
class Lineage:
    """How a run started under a player relates to the recorded run."""

    parent_run_id: str
    fork_step: int  # 0: a replay of the parent; N >= 1: a fork that served steps 1..N, then went live
    mode: str


class Player(Protocol):
    def serve(self, kind: EventKind, name: str, request: bytes) -> Served | None:
        """The recorded outcome of this call, ``None`` to go live, or raise on divergence.

        *name* is the span name of the boundary event (``chat gpt-4o``,
        ``execute_tool get_weather``). Players may also define
        ``lineage() -> Lineage | None`` and ``recorded(kind) -> bool``.
        """


_player: Player | None = None
_lock = threading.Lock()


def serve(kind: EventKind, name: str, request: bytes) -> Served | None:
    player = _player
    return None if player is None else player.serve(kind, name, request)


def active() -> Player | None:
    return _player


def call_site() -> tuple[str, str]:
    """(run id, task path) of the calling code; ``("", "")`` outside any run."""
    run = current_run()
    return (run.run_id, current_task_path()) if run is not None else ("", "")


def lineage() -> Lineage | None:
    """The link a run starting now gets to the run being replayed, if a player says so."""
    link = getattr(_player, "lineage", None)
    return link() if link is not None else None


def recorded(kind: EventKind) -> bool:
    """Whether the recording being replayed holds any event of *kind* (``True`` when the player can't say)."""
    has = getattr(_player, "recorded", None)
    return True if has is None else bool(has(kind))


def install(player: Player) -> None:
    global _player
    with _lock:
        if _player is not None:
            raise RuntimeError("a replay is already running in this process")
        _player = player


def uninstall(player: Player) -> None:
    global _player
    with _lock:
        if _player is player:
            _player = None
