"""Ingest sequence: monotonic per collector, unique across collectors.

A value is ``(microsecond clock << 12) | node``: the high part never goes
backwards within a collector (it advances by one per row when the clock
stands still or steps back), and the 12-bit node id keeps two collectors
from ever producing the same value. It versions rows for ReplacingMergeTree,
so a retried span keeps one row, the latest.
"""

from __future__ import annotations

import random
import threading
import time

__all__ = ["IngestSequence"]

NODE_BITS = 12


class IngestSequence:
    def __init__(self, node: int | None = None) -> None:
        self.node = random.SystemRandom().randrange(1 << NODE_BITS) if node is None else node
        if not 0 <= self.node < (1 << NODE_BITS):
            raise ValueError(f"node id must fit in {NODE_BITS} bits")
        self._last = 0
        self._lock = threading.Lock()

    def take(self, count: int) -> int:
        """Reserve *count* consecutive values; returns the first."""
        with self._lock:
            first = max(self._last + 1, time.time_ns() // 1000)
            self._last = first + count - 1
        return (first << NODE_BITS) | self.node

    @staticmethod
    def step() -> int:
        """Distance between consecutive values of one reservation."""
        return 1 << NODE_BITS
