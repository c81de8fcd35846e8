"""``instrument()``: one line that wires the OTel SDK, the exporter, the blob
uploader and the client patches, and ``uninstrument()`` that undoes all of it."""

from __future__ import annotations

import atexit
import gc
import logging
import os
import re
import socket
import sys
import threading
import time
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Iterable
from urllib.parse import urlsplit

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from tracetape.schemas import attributes as A
from tracetape.schemas import config

from . import _endings, _payload, redaction
from ._blobs import BlobUploader
from ._boundary import use_provider
from ._patches import PatchSet
from ._processor import RunSpanProcessor
from ._tasks import propagation_patches

__all__ = ["instrument", "uninstrument", "flush", "Instrumentation"]

_log = logging.getLogger(__name__)
_lock = threading.Lock()


class _Switch(SpanProcessor):
    """tracetape's processors behind one switch.

    OTel lets a process set its global provider once and never remove a
    processor, so ``uninstrument()`` turns the switch off (flushing and
    closing what it held) and a later ``instrument()`` turns it on again.
    """

    def __init__(self) -> None:
        self.delegates: tuple[SpanProcessor, ...] = ()

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        for delegate in self.delegates:
            delegate.on_start(span, parent_context)

    def on_end(self, span: Any) -> None:
        for delegate in self.delegates:
            delegate.on_end(span)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        _endings.drain()  # model calls that have ended but whose spans wait for their batch
        return all([d.force_flush(timeout_millis) for d in self.delegates])

    def shutdown(self) -> None:
        delegates, self.delegates = self.delegates, ()
        for delegate in delegates:
            delegate.shutdown()


def _switch_of(provider: TracerProvider) -> _Switch:
    switch = getattr(provider, "_tracetape_switch", None)
    if switch is None:
        switch = _Switch()
        provider.add_span_processor(switch)
        provider._tracetape_switch = switch  # type: ignore[attr-defined]
    return switch


class _AbortableExporter(SpanExporter):
    """The OTLP exporter, with :meth:`abort` to stop at once: retries to a dead collector end, the
    spans still queued are dropped. OTel's own shutdown would wait out its export timeout first."""

    def __init__(self, inner: SpanExporter) -> None:
        self._inner = inner
        self._closed = False

    def export(self, spans: Any) -> SpanExportResult:
        return SpanExportResult.FAILURE if self._closed else self._inner.export(spans)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)

    def abort(self) -> None:
        self.shutdown()

    def shutdown(self, timeout_millis: float = 30000) -> None:  # the processor passes its remaining time
        if not self._closed:
            self._closed = True
            self._inner.shutdown()


@dataclass
class Instrumentation:
    """What ``instrument()`` set up; kept so ``uninstrument()`` can undo exactly that."""

    provider: TracerProvider
    uploader: BlobUploader
    instrumentors: list[Any]
    switch: _Switch
    patches: PatchSet
    exporter: _AbortableExporter | None = None
    target: str = ""


_active: Instrumentation | None = None
_atexit_registered = False


def _grpc_target(endpoint: str) -> tuple[str, bool]:
    """``http://host:port`` → (``host:port``, secure?)."""
    if "://" not in endpoint:
        return endpoint, not config.setting(config.OTLP_INSECURE)
    parts = urlsplit(endpoint)
    return parts.netloc, parts.scheme == "https"


def _instrumentors() -> list[Any]:
    """tracetape's instrumentors, from the ``opentelemetry_instrumentor`` entry points.

    The same registry ``opentelemetry-instrument`` reads, so
    ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS`` works for both.
    """
    disabled = {n.strip() for n in config.setting(config.DISABLED_INSTRUMENTATIONS).split(",") if n.strip()}
    found = []
    for entry in entry_points(group="opentelemetry_instrumentor"):
        if not entry.name.startswith("tracetape_") or entry.name in disabled:
            continue
        try:
            found.append(entry.load()())
        except Exception as exc:  # noqa: BLE001 - one broken instrumentor must not stop the others
            _log.warning("tracetape: cannot load instrumentor %s: %r", entry.name, exc)
    return found


def _redaction_rules(redact: Iterable[Any]) -> tuple[list[Any], list[Any]]:
    """(patterns, hooks) of ``instrument(redact=...)``: regexes (text or compiled) and callables."""
    patterns, hooks = [], []
    for rule in redact:
        if isinstance(rule, (str, re.Pattern)):
            patterns.append(rule)
        elif callable(rule):
            hooks.append(rule)
        else:
            raise TypeError(f"redact rules are regexes or callables (role, data) -> data, not {type(rule).__name__}")
    return patterns, hooks


def instrument(endpoint: str | None = None, *, service_name: str | None = None, project: str | None = None,
               token: str | None = None, redact: Iterable[str | re.Pattern[str] | redaction.Hook] = ()
               ) -> Instrumentation:
    """Record this process: spans over OTLP/gRPC, payloads over the BlobService.

    Endpoint precedence: argument, ``OTEL_EXPORTER_OTLP_ENDPOINT``, localhost.
    *redact*: the user's redaction rules on top of the built-in ones (API keys,
    bearer tokens, credential fields): regexes whose matches are replaced by
    ``[REDACTED]`` (only the group named ``secret`` when there is one), and
    callables ``(role, data: bytes) -> bytes`` (see ``redaction``). They apply
    to every payload and preview before it is hashed or leaves the process,
    and to the requests a replay compares with the recording.
    A second call returns the first setup unchanged.
    """
    global _active, _atexit_registered
    with _lock:
        if _active is not None:
            return _active
        from ._otlp_wire import WireSpanExporter  # grpc is imported by instrument(), not by import tracetape

        endpoint = config.setting(config.OTLP_ENDPOINT, endpoint)
        project = config.setting(config.PROJECT, project)
        token = config.setting(config.TOKEN, token)
        service = config.setting(config.SERVICE_NAME, service_name) or os.path.basename(sys.argv[0] or "python")
        target, secure = _grpc_target(endpoint)
        metadata = (("authorization", f"Bearer {token}"),) if token else ()
        redaction.configure(*_redaction_rules(redact))

        provider = trace.get_tracer_provider()
        if not isinstance(provider, TracerProvider):
            provider = TracerProvider(resource=Resource.create({A.SERVICE_NAME: service, A.PROJECT: project}))
            trace.set_tracer_provider(provider)
        use_provider(provider)
        switch = _switch_of(provider)
        exporter = _AbortableExporter(
            WireSpanExporter(endpoint=target, insecure=not secure, headers=dict(metadata) or None))
        switch.delegates = (RunSpanProcessor(project, provider.resource), BatchSpanProcessor(exporter))

        uploader = BlobUploader(target, secure=secure, metadata=metadata,
                                max_queue_bytes=config.setting(config.BLOB_QUEUE_BYTES))
        _payload.configure(uploader, config.setting(config.PREVIEW_BYTES))
        patches = propagation_patches()
        patches.apply()
        instrumentors = _instrumentors()
        for instrumentor in instrumentors:
            instrumentor.instrument(tracer_provider=provider)
        _active = Instrumentation(provider, uploader, instrumentors, switch, patches, exporter, target)
        _endings.start()
        if config.setting(config.REPLAY):
            from tracetape.replay.commands import activate_from_env

            activate_from_env()  # raises if the replay cannot start: going live would spend API calls
        if not _atexit_registered:
            atexit.register(_shutdown_at_exit)
            _atexit_registered = True
        if config.setting(config.GC_FREEZE):
            # Every recorded event allocates, so recording triggers more collections, and a full one scans
            # every tracked object: in an app with a big heap that scan, not our code, dominated the cost
            # of an event (20-30 µs of a served step in bench/replay.py). What exists now (imported modules,
            # the app's startup state, a replay's recording) lives on anyway; frozen, it is not scanned.
            gc.freeze()
        return _active


def flush(timeout: float = 10.0) -> bool:
    """Push every payload and span recorded so far to the collector."""
    active = _active
    if active is None:
        return True
    deadline = time.monotonic() + timeout
    _endings.drain()  # before the payloads: endings queue them
    blobs_done = active.uploader.flush(max(0.0, deadline - time.monotonic()))
    return active.switch.force_flush(int(timeout * 1000)) and blobs_done


def uninstrument(timeout: float = 10.0) -> None:
    """Undo ``instrument()``: patches removed, pending data flushed, exporters closed.

    Waits up to *timeout* seconds for a collector that answers; one that does
    not (down, or nothing listening) costs at most :data:`_PROBE_S` more: what
    is pending is then dropped and counted, not retried.
    """
    global _active
    with _lock:
        active, _active = _active, None
        if active is None:
            return
        for instrumentor in active.instrumentors:
            instrumentor.uninstrument()
        active.patches.undo()
        _endings.stop()  # under the rules in force while they were recorded, before anything closes
        redaction.configure()
        answers = _answers(active.target)
        # Payloads first: a span read back before its blobs would look broken.
        active.uploader.shutdown(timeout if answers else 0.0)
        _payload.configure(None, config.setting(config.PREVIEW_BYTES))
        if active.exporter is not None and (not answers or active.uploader.unreachable):
            active.exporter.abort()
        active.switch.shutdown()
        use_provider(None)


_PROBE_S = 0.5


def _answers(target: str) -> bool:
    """Whether anything accepts connections at the collector's ``host:port`` (within :data:`_PROBE_S`).

    A target that is not ``host:port`` (a unix socket) is taken to answer: the exporters' own
    timeouts then apply.
    """
    host, _, port = target.rpartition(":")
    if not port.isdigit() or "/" in target:
        return True
    try:
        with socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=_PROBE_S):
            return True
    except OSError:
        return False


def _shutdown_at_exit() -> None:
    try:
        uninstrument()
    except Exception:  # noqa: BLE001 - interpreter is exiting; never raise from atexit
        _log.debug("tracetape shutdown failed", exc_info=True)
