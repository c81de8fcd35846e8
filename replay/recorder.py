"""Record runs straight into tape files, in process: no collector, no store.

For CI and the pytest plugin: the agent's spans and payloads are captured as
they happen and written as a tape when recording stops. It rides on the
normal instrumentation — an extra span processor next to tracetape's own, and
a tee on the payload uploader — so what lands in the tape is exactly what a
collector would have stored (spans still go to the collector too, if one
listens).
"""

from __future__ import annotations

import os
import threading
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor

from tracetape.instrumentation import Instrumentation, instrument
from tracetape.instrumentation._endings import drain as drain_endings
from tracetape.schemas import attributes as A
from tracetape.schemas import config
from tracetape.schemas.errors import TapeError

from ._rows import row_from_span
from .tape import write_tape
from .trajectory import run_info

__all__ = ["TapeRecorder"]


class _TapeProcessor(SpanProcessor):
    """Hands finished run spans to the recorder that is on; registered once per tracer provider
    (OTel cannot remove a processor, so recorders switch it on and off instead)."""

    def __init__(self) -> None:
        self.recorder: TapeRecorder | None = None

    def on_end(self, span: ReadableSpan) -> None:
        recorder = self.recorder
        if recorder is not None and span.attributes and A.RUN_ID in span.attributes:
            recorder._add_span(row_from_span(span))


def _processor(instrumentation: Instrumentation) -> _TapeProcessor:
    provider = instrumentation.provider
    processor = getattr(provider, "_tracetape_tape_processor", None)
    if processor is None:
        processor = _TapeProcessor()
        provider.add_span_processor(processor)
        provider._tracetape_tape_processor = processor  # type: ignore[attr-defined]
    return processor


class TapeRecorder:
    """``with TapeRecorder() as recorder: <agent code>`` then ``recorder.write("run.tape")``."""

    def __init__(self, instrumentation: Instrumentation | None = None) -> None:
        self._instrumentation = instrumentation or instrument()
        self._processor = _processor(self._instrumentation)
        self._lock = threading.Lock()
        self._rows: list[dict[str, Any]] = []
        self._blobs: dict[str, bytes] = {}
        self._uploader_put: Any = None

    def _add_span(self, row: dict[str, Any]) -> None:
        with self._lock:
            self._rows.append(row)

    def _tee(self, data: bytes, content_type: str = "application/octet-stream") -> str:
        digest = self._uploader_put(data, content_type)
        with self._lock:
            self._blobs.setdefault(digest, bytes(data))
        return digest

    def start(self) -> "TapeRecorder":
        if self._processor.recorder is not None:
            raise TapeError("another tape recorder is already recording in this process")
        self._processor.recorder = self
        uploader = self._instrumentation.uploader
        self._uploader_put = uploader.put
        uploader.put = self._tee  # type: ignore[method-assign]  # instance attribute; removed by stop()
        return self

    def stop(self) -> None:
        drain_endings()  # model calls that have ended but whose spans wait for their batch
        if self._processor.recorder is self:
            self._processor.recorder = None
            vars(self._instrumentation.uploader).pop("put", None)

    def __enter__(self) -> "TapeRecorder":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def run_ids(self) -> list[str]:
        """The runs recorded so far, in the order they started."""
        with self._lock:
            rows = list(self._rows)
        return list(dict.fromkeys(row["run_id"] for row in sorted(rows, key=lambda r: r["start_ns"])))

    def write(self, path: str | os.PathLike[str], run_id: str | None = None) -> str:
        """Write the one recorded run (or *run_id*) as a tape at *path*."""
        runs = self.run_ids
        if run_id is None:
            if len(runs) != 1:
                raise TapeError(f"a tape holds one run; {len(runs)} were recorded"
                                + ("" if runs else " (is the agent code inside `with tracetape.run(...)`?)"))
            run_id = runs[0]
        with self._lock:
            spans = [row for row in self._rows if row["run_id"] == run_id]
            blobs = dict(self._blobs)
        if not spans:
            raise TapeError(f"run {run_id} was not recorded by this recorder")
        return write_tape(path, run_info(run_id, None, spans), spans, blobs,
                          project=config.setting(config.PROJECT))
