"""Payloads held back until their run's outcome is known (payload sampling).

A successful run keeps its payloads only 1 in N times, a failed run always,
and the outcome is known only at the end of the run. So a run that is not
already kept by the sample holds its payloads here: in memory up to a shared
cap, beyond it in a temporary file, beyond the file cap dropped and counted.
At the end the run's hold is either handed to the uploader (kept) or closed
(discarded, counted). The spans, the event log, are never held.
"""

from __future__ import annotations

import logging
import tempfile
from typing import IO, Iterator

__all__ = ["Held", "Holds"]

_log = logging.getLogger(__name__)


class Held:
    """The held payloads of one run, in the order they were recorded."""

    __slots__ = ("run_id", "items", "digests", "spill", "spill_size", "memory_bytes")

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        # (digest, content_type, data or None when spilled, offset in the spill file, size)
        self.items: list[tuple[str, str, bytes | None, int, int]] = []
        self.digests: set[str] = set()
        self.spill: IO[bytes] | None = None
        self.spill_size = 0
        self.memory_bytes = 0

    def take(self, max_bytes: int) -> list[tuple[str, bytes, str]]:
        """Remove and return the oldest payloads, up to about *max_bytes* (at least one)."""
        taken: list[tuple[str, bytes, str]] = []
        total = 0
        while self.items and (not taken or total + self.items[0][4] <= max_bytes):
            digest, content_type, data, offset, size = self.items.pop(0)
            if data is None:
                data = self._read(offset, size)
            else:
                self.memory_bytes -= size
            taken.append((digest, data, content_type))
            total += size
        return taken

    def _read(self, offset: int, size: int) -> bytes:
        assert self.spill is not None
        self.spill.seek(offset)
        return self.spill.read(size)

    def close(self) -> None:
        self.items.clear()
        self.memory_bytes = 0
        if self.spill is not None:
            self.spill.close()
            self.spill = None


class Holds:
    """All runs' held payloads, under one memory cap and one spill cap. Not thread-safe: the uploader locks."""

    def __init__(self, max_memory_bytes: int, max_spill_bytes: int) -> None:
        self.max_memory_bytes = max_memory_bytes
        self.max_spill_bytes = max_spill_bytes
        self._runs: dict[str, Held] = {}
        self.memory_bytes = 0
        self.spill_bytes = 0
        self.dropped = 0
        self.discarded = 0

    def __len__(self) -> int:
        return len(self._runs)

    def add(self, run_id: str, digest: str, data: bytes, content_type: str) -> bool:
        """Hold one payload of *run_id*; ``False`` if it had to be dropped (both caps reached)."""
        held = self._runs.get(run_id)
        if held is None:
            held = self._runs[run_id] = Held(run_id)
        if digest in held.digests:
            return True
        size = len(data)
        if self.memory_bytes + size <= self.max_memory_bytes:
            held.items.append((digest, content_type, data, 0, size))
            held.memory_bytes += size
            self.memory_bytes += size
        elif self.spill_bytes + size <= self.max_spill_bytes:
            if held.spill is None:
                held.spill = tempfile.TemporaryFile(prefix="tracetape-held-")
            held.spill.seek(held.spill_size)
            held.spill.write(data)
            held.items.append((digest, content_type, None, held.spill_size, size))
            held.spill_size += size
            self.spill_bytes += size
        else:
            self.dropped += 1
            return False
        held.digests.add(digest)
        return True

    def pop(self, run_id: str) -> Held | None:
        """Stop holding *run_id*: its payloads, to upload or to :meth:`discard`."""
        held = self._runs.pop(run_id, None)
        if held is not None:
            self.memory_bytes -= held.memory_bytes
            self.spill_bytes -= held.spill_size
        return held

    def discard(self, held: Held) -> None:
        self.discarded += len(held.items)
        held.close()

    def drain(self) -> Iterator[Held]:
        """Every run still held (at shutdown, when no outcome will come: their payloads are kept)."""
        for run_id in list(self._runs):
            held = self.pop(run_id)
            if held is not None:
                yield held

    def reset(self) -> None:
        """Forget everything without touching files (after fork, the parent still owns them)."""
        self._runs = {}
        self.memory_bytes = self.spill_bytes = 0
