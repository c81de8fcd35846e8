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
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Mapping, Protocol

from tracetape.schemas.events import EventKind

__all__ = ["Served", "Player", "serve", "install", "uninstall", "active", "REQUEST", "RESPONSE"]

REQUEST = "request"
RESPONSE = "response"


@dataclass(frozen=True)
class Served:
    """A recorded outcome: the response bytes, or the error the call raised."""

    response: bytes = b""
    error_type: str = ""  # qualified name of the exception the recorded call raised, if any
    error_message: str = ""
    attributes: Mapping[str, str] = field(default_factory=dict)  # other recorded span attributes


class Player(Protocol):
    def serve(self, kind: EventKind, name: str, request: bytes) -> Served | None:
        """The recorded outcome of this call, ``None`` to go live, or raise on divergence."""


_player: Player | None = None
_lock = threading.Lock()


def serve(kind: EventKind, name: str, request: bytes) -> Served | None:
    player = _player
    return None if player is None else player.serve(kind, name, request)


def active() -> Player | None:
    return _player


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
