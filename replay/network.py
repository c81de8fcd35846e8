"""No live network during replay, unless the replay decided to go live.

Every served boundary returns before any socket is opened, so an outbound
connection during replay means something the recording cannot serve: a call
no capture point saw, or one the player refused. The guard patches
``socket.socket.connect``/``connect_ex`` (``socket.create_connection``,
``asyncio`` and ``ssl`` all end there) for the length of the replay and asks
the player what to do with each internet connection (AF_INET/AF_INET6;
Unix sockets are local IPC and pass). Allowed without asking: the collector
the replay run itself is recorded to (OTLP endpoint) and the addresses the
caller lists. Loopback is not allowed by default: a "local" model server is
exactly the kind of live call a replay must not make.
"""

from __future__ import annotations

import socket
from typing import Any, Callable, Iterable
from urllib.parse import urlsplit

from tracetape.schemas import config

__all__ = ["NetworkGuard", "parse_endpoints"]

_LOCALHOST = {"localhost": ("127.0.0.1", "::1")}
_MISSING = object()


def parse_endpoints(specs: Iterable[str]) -> set[tuple[str, int | None]]:
    """``host:port``, ``host`` or URLs → {(host, port or None for any port)}; ``localhost`` means both loopbacks."""
    endpoints: set[tuple[str, int | None]] = set()
    for spec in specs:
        spec = spec.strip()
        if not spec:
            continue
        parts = urlsplit(spec if "://" in spec else f"//{spec}")
        host = (parts.hostname or "").lower()
        port = parts.port
        for name in _LOCALHOST.get(host, (host,)):
            endpoints.add((name, port))
        if host in _LOCALHOST:
            endpoints.add((host, port))
    return endpoints


class NetworkGuard:
    """While applied, internet connections go through *decide*: it returns to let them pass, or raises."""

    def __init__(self, decide: Callable[[str, int], None], allow: Iterable[str] = ()) -> None:
        self._decide = decide
        self.allowed = parse_endpoints([*allow, config.setting(config.OTLP_ENDPOINT)])
        self._saved: list[tuple[str, Any]] = []

    def permits(self, host: str, port: int) -> bool:
        host = host.lower()
        return (host, port) in self.allowed or (host, None) in self.allowed

    def _check(self, sock: socket.socket, address: Any) -> None:
        if sock.family not in (socket.AF_INET, socket.AF_INET6) or not isinstance(address, tuple):
            return
        host, port = str(address[0]), int(address[1])
        if not self.permits(host, port):
            self._decide(host, port)

    def apply(self) -> None:
        if self._saved:
            return
        guard = self
        for name in ("connect", "connect_ex"):
            original = getattr(socket.socket, name)
            self._saved.append((name, vars(socket.socket).get(name, _MISSING)))

            def patched(sock: socket.socket, address: Any, _original: Any = original) -> Any:
                guard._check(sock, address)
                return _original(sock, address)

            setattr(socket.socket, name, patched)

    def undo(self) -> None:
        while self._saved:
            name, original = self._saved.pop()
            if original is _MISSING:
                delattr(socket.socket, name)
            else:
                setattr(socket.socket, name, original)
