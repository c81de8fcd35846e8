"""Clock, random and uuid values: recorded compactly, served back in order.

These functions sit on the hot path of user code, so a span per call is out
of the question. Values are recorded in batches instead: one batch per
(task, source) — ``time.time`` in task ``0.2``, say — holds up to
:data:`BATCH_VALUES` consecutive results and becomes ONE event (kind
``clock``/``random``/``uuid``, span name = the source) whose ``response``
payload holds the values (:func:`decode_batch` reads it back): a JSON list,
or for floats ``{"f64": <base64 of little-endian doubles>}`` — exact, and
some 25 times cheaper to write than the text of each float, which would
otherwise be most of the cost per recorded call. The span's
``tracetape.values.preview`` shows the first values as text.

The batch's span starts at its FIRST value, so the event takes its sequence
number where the values began, between the events around it. That is also
the moment replay asks the player for the batch (``seam.serve(kind, source,
b'{"source": ...}')``): positions line up, and the player's per-(task, kind)
matching serves the recorded list, which is then handed out one value per
call. A batch ends when it is full (or, replaying, when its recorded values
are used up), when the OTel context changes (a tool call or other span
begins or ends: a served tool's body does not run during replay, so values
drawn inside it must not share a batch with values drawn outside it), and at
the end of the run (``close_run``).

Outside runs a patched function costs one list test. Inside, see ``_scope``
for which calls are recorded; our own code, infrastructure and the OTel SDK
(span ids, timestamps — bound before any patch) keep the real values.
"""

from __future__ import annotations

import base64
import functools
import json
import logging
import os
import struct
import sys
import threading
import weakref
from typing import Any, Callable

from opentelemetry.trace import SpanKind

from tracetape.schemas.attributes import VALUES_COUNT, VALUES_PREVIEW, VALUES_DIVERGED
from tracetape.schemas.events import EventKind

from . import seam
from ._boundary import ask_player, start
from ._guard import guarded
from ._payload import attach, preview, to_json_bytes
from ._runs import Run, current_run
from ._scope import current_otel_context, excluded_modules, module_excluded, open_runs, task_slot

__all__ = ["ValueSource", "BATCH_VALUES", "draw", "recording", "close_run", "close_all", "decode_batch",
           "VALUES_COUNT", "VALUES_DIVERGED"]

_log = logging.getLogger(__name__)

BATCH_VALUES = 1024
# To move into schemas/attributes.py (declared here until then).
_PREVIEW_VALUES = 8


def _recorded_as_is(recorded: Any, args: tuple) -> Any:
    return recorded


class ValueSource:
    """One patched function whose results are recorded.

    *encode* turns a result into a JSON value (``None``: it is one already);
    *decode(recorded, args)* turns a recorded value back into the result of a
    call with *args*, raising ``ValueError`` when it cannot stand for that call
    (a different size asked). *floats*: every value is a ``float``, stored packed.
    """

    __slots__ = ("name", "kind", "encode", "decode", "floats", "request", "hot")

    def __init__(self, name: str, kind: EventKind, encode: Callable[[Any], Any] | None = None,
                 decode: Callable[[Any, tuple], Any] = _recorded_as_is, *, floats: bool = False) -> None:
        self.name = name
        self.kind = kind
        self.encode = encode
        self.decode = decode
        self.floats = floats
        # Positional matching does the rest: what is asked is always "the next values of this source".
        self.request = to_json_bytes({"source": name})
        self.hot: _Batch | None = None  # the batch the last recorded value went to (see ``draw``)
        _sources.append(self)


class _Batch:
    __slots__ = ("source", "span", "slot", "context", "values", "served", "limit", "diverged", "taking")

    def __init__(self, source: ValueSource, span: Any, slot: Any, context: Any, served: list[Any] | None) -> None:
        self.source = source
        self.span = span
        self.slot = slot
        self.context = context
        self.values: list[Any] = []
        self.served = served
        self.limit = len(served) if served is not None else BATCH_VALUES
        self.diverged = 0
        # Open, recording (not serving) and not full: the next value of its task and context may go
        # straight in (the fast path of ``draw``).
        self.taking = served is None

    def record(self, value: Any) -> Any:
        encode = self.source.encode
        self.values.append(value if encode is None else encode(value))
        return value

    def serve(self, live: Callable[..., Any], args: tuple) -> Any:
        """The next recorded value, as the result of a call with *args* (replaying)."""
        served = self.served
        assert served is not None
        if len(self.values) >= len(served):
            return self.record(live(*args))
        recorded = served[len(self.values)]
        try:
            value = self.source.decode(recorded, args)
        except (ValueError, TypeError, KeyError) as exc:
            self.diverged += 1
            _log.warning("tracetape replay: recorded %s value #%d cannot answer this call (%s); using a live value",
                         self.source.name, len(self.values) + 1, exc)
            return self.record(live(*args))
        self.values.append(recorded)
        return value

    def close(self) -> None:
        self.taking = False
        span, self.span = self.span, None
        if span is None:
            return
        span.set_attribute(VALUES_COUNT, len(self.values))
        span.set_attribute(VALUES_PREVIEW, preview(json.dumps(self.values[:_PREVIEW_VALUES], default=repr)))
        if self.diverged:
            span.set_attribute(VALUES_DIVERGED, self.diverged)
        try:
            # Numbers, hex and ISO dates: nothing a redaction rule is about, and the hot path pays for it.
            attach(span, seam.RESPONSE, encode_batch(self.values, self.source.floats), redact=False)
        finally:
            span.end()


def encode_batch(values: list[Any], floats: bool) -> bytes:
    if floats and all(type(v) is float for v in values):
        packed = struct.pack(f"<{len(values)}d", *values)
        return to_json_bytes({"f64": base64.b64encode(packed).decode("ascii")})
    return to_json_bytes(values)


def decode_batch(data: bytes) -> list[Any]:
    """The values of a recorded clock/random/uuid event, from its ``response`` payload."""
    decoded = json.loads(data) if data else []
    if isinstance(decoded, dict) and isinstance(decoded.get("f64"), str):
        packed = base64.b64decode(decoded["f64"])
        return list(struct.unpack(f"<{len(packed) // 8}d", packed))
    if not isinstance(decoded, list):
        raise ValueError(f"recorded values are neither a list nor packed floats: {type(decoded).__name__}")
    return decoded


class _TaskValues:
    """The open batches of one logical task of one run."""

    __slots__ = ("run", "batches")

    def __init__(self, run: Run) -> None:
        self.run = run
        self.batches: dict[str, _Batch] = {}


_MISSING = object()
_sources: list[ValueSource] = []
_states: dict[Any, _TaskValues | None] = {}  # task slot -> its values; None: a slot drawing after its run ended
_by_run: dict[Run, list[_TaskValues]] = {}
_closed: "weakref.WeakSet[Run]" = weakref.WeakSet()
_lock = threading.Lock()


_getframe = sys._getframe
_verdicts = excluded_modules()


def draw(source: ValueSource, live: Callable[..., Any], *args: Any) -> Any:
    """The value for one call of a patched function while some run is open (callers test that first).

    Must be called directly by the patched function: the frame above that is the caller judged by
    ``_scope``. Written flat, with the lookups bound at import: it runs on every recorded call. A
    value of the same task and context as the source's last one goes straight into that batch.
    """
    slot = task_slot()
    if slot is None:
        return live(*args)
    module = _getframe(2).f_globals.get("__name__")
    excluded = _verdicts.get(module)
    if excluded or (excluded is None and module_excluded(module)):
        return live(*args)
    context = current_otel_context()
    batch = source.hot
    if batch is not None and batch.taking and batch.slot is slot and batch.context is context:
        value = live(*args)
        values = batch.values
        values.append(value if source.encode is None else source.encode(value))
        if len(values) >= BATCH_VALUES:
            batch.taking = False
        return value
    return _draw(source, live, args, slot, context)


def _draw(source: ValueSource, live: Callable[..., Any], args: tuple, slot: Any, context: Any) -> Any:
    """:func:`draw` when the value does not simply go into the source's last batch."""
    state = _states.get(slot, _MISSING)
    if state is _MISSING:
        state = _adopt(slot)
    if state is None:
        return live(*args)
    batch = state.batches.get(source.name)
    if batch is None or batch.context is not context or len(batch.values) >= batch.limit:
        batch = _open_batch(state, source, slot, context)
    source.hot = batch
    if batch.served is None:
        return batch.record(live(*args))
    return batch.serve(live, args)


def recording(source: ValueSource, real: Callable[..., Any], arity: int = 0) -> Callable[..., Any]:
    """A drop-in for *real* (taking *arity* 0 or 1 arguments) that records *source* while a run is open.

    One shape per arity, no ``*args``: outside runs this is the whole added cost of the patch.
    """
    runs = open_runs()
    if arity == 0:
        @functools.wraps(real)
        def no_args() -> Any:
            if not runs:
                return real()
            return draw(source, real)

        return no_args

    @functools.wraps(real)
    def one_arg(arg: Any) -> Any:
        if not runs:
            return real(arg)
        return draw(source, real, arg)

    return one_arg


def _adopt(slot: Any) -> _TaskValues | None:
    run = current_run()
    with _lock:
        state = _TaskValues(run) if run is not None and run in open_runs() and run not in _closed else None
        _states[slot] = state
        if state is not None:
            _by_run.setdefault(run, []).append(state)
    return state


def _open_batch(state: _TaskValues, source: ValueSource, slot: Any, context: Any) -> _Batch:
    old = state.batches.pop(source.name, None)
    if old is not None:
        guarded(old.close)
    span = guarded(start, source.name, source.kind, source.request, {}, SpanKind.INTERNAL)
    served = ask_player(span, source.kind, source.name, source.request)
    values = guarded(decode_batch, served.response) if served is not None else None
    batch = _Batch(source, span, slot, context, values)
    state.batches[source.name] = batch
    return batch


def close_run(run: Run) -> None:
    """End every open batch of *run* (at its end): their events get their values.

    Values drawn in the run's tasks after this go live and unrecorded.
    """
    with _lock:
        _closed.add(run)
        states = _by_run.pop(run, [])
        for slot, state in list(_states.items()):
            if state is not None and state.run is run:
                del _states[slot]
    for state in states:
        for batch in list(state.batches.values()):
            guarded(batch.close)
        state.batches.clear()


def _forget_after_fork() -> None:
    # A forked child must not end (and so export again) the spans of its parent's open batches.
    global _lock
    _lock = threading.Lock()
    _states.clear()
    _by_run.clear()
    for source in _sources:
        source.hot = None


os.register_at_fork(after_in_child=_forget_after_fork)


def close_all() -> None:
    """End every open batch of every run (when the patches are removed)."""
    with _lock:
        runs = list(_by_run)
    for run in runs:
        close_run(run)
    with _lock:
        _states.clear()

