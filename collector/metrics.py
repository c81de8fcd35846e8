"""The collector's Prometheus metrics, in the text exposition format.

A tiny registry instead of prometheus_client: the collector needs counters,
gauges and one latency histogram, and every extra dependency is one more
thing a team has to vet before running the collector.
"""

from __future__ import annotations

import bisect
import threading

__all__ = ["Counter", "Gauge", "Histogram", "Registry", "METRICS"]


class Counter:
    def __init__(self, name: str, doc: str) -> None:
        self.name, self.doc, self.value = name, doc, 0.0
        self._lock = threading.Lock()

    def inc(self, amount: float = 1.0) -> None:
        with self._lock:
            self.value += amount

    def render(self) -> list[str]:
        return [f"# HELP {self.name} {self.doc}", f"# TYPE {self.name} counter", f"{self.name} {self.value:g}"]


class Gauge(Counter):
    def set(self, value: float) -> None:
        self.value = value

    def render(self) -> list[str]:
        return [f"# HELP {self.name} {self.doc}", f"# TYPE {self.name} gauge", f"{self.name} {self.value:g}"]


class Histogram:
    BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

    def __init__(self, name: str, doc: str) -> None:
        self.name, self.doc = name, doc
        self._counts = [0] * (len(self.BUCKETS) + 1)
        self._sum = 0.0
        self._lock = threading.Lock()

    def observe(self, seconds: float) -> None:
        with self._lock:
            self._counts[bisect.bisect_left(self.BUCKETS, seconds)] += 1
            self._sum += seconds

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.doc}", f"# TYPE {self.name} histogram"]
        with self._lock:
            running = 0
            for bound, count in zip(self.BUCKETS, self._counts):
                running += count
                lines.append(f'{self.name}_bucket{{le="{bound:g}"}} {running}')
            total = running + self._counts[-1]
            lines += [f'{self.name}_bucket{{le="+Inf"}} {total}', f"{self.name}_sum {self._sum:g}",
                      f"{self.name}_count {total}"]
        return lines


class Registry:
    def __init__(self) -> None:
        self.spans_received = Counter("tracetape_spans_received_total", "Spans received by the receivers.")
        self.spans_persisted = Counter("tracetape_spans_persisted_total", "Span rows inserted into the store.")
        self.spans_rejected = Counter("tracetape_spans_rejected_total", "Spans refused as invalid or over limits.")
        self.spans_spooled = Counter("tracetape_spans_spooled_total", "Spans written to the local spool.")
        self.blobs_stored = Counter("tracetape_blobs_stored_total", "Blobs inserted into the store.")
        self.blobs_duplicate = Counter("tracetape_blobs_duplicate_total", "Blob uploads already stored.")
        self.queue_depth = Gauge("tracetape_writer_queue_depth", "Requests waiting for the writer.")
        self.spool_bytes = Gauge("tracetape_spool_bytes", "Bytes in the local spool awaiting replay.")
        self.insert_seconds = Histogram("tracetape_insert_duration_seconds", "Latency of one INSERT batch.")

    def render(self) -> str:
        lines: list[str] = []
        for metric in vars(self).values():
            lines += metric.render()
        return "\n".join(lines) + "\n"


METRICS = Registry()
