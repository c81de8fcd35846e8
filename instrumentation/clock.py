"""Clock reads: recorded per task in compact batches, served back in order during replay.

Patched: ``time.time``, ``time.time_ns``, ``time.monotonic``,
``time.monotonic_ns``, and — opt-in, see below — ``datetime.datetime.now`` /
``utcnow`` / ``today`` (events of kind ``clock``; see ``_values`` for
batching and replay).

What is not covered, by construction:

- Names bound before ``instrument()``: ``from time import time`` or
  ``from datetime import datetime`` executed earlier keep the original
  function or class. Module attribute access (``time.time()``,
  ``datetime.datetime.now()``) always sees the patch. The launcher
  (``tracetape run -- python agent.py``) instruments before the agent's own
  imports, so there both spellings are covered.
- ``time.perf_counter`` (durations, not decisions), ``datetime.date.today``,
  and clocks read from C code.

``datetime.datetime`` is a C type whose methods cannot be replaced, so
recording ``datetime.now()`` means replacing the ``datetime`` module's
``datetime`` attribute by a subclass that overrides ``now``/``utcnow``/
``today`` and is otherwise as invisible as Python allows: it builds plain
``datetime`` objects, ``isinstance``/``issubclass`` answer as for the real
class, and ``pickle``/``copy`` of datetimes keep working (a ``copyreg``
reducer names the class by its public path, so pickles load anywhere). What
cannot be hidden: ``type(dt) is datetime.datetime`` is false; registries
keyed by the class object (``functools.singledispatch``) see the subclass;
and compiled extensions imported while it is in place (Cython modules that
``cimport`` datetime: pandas, clickhouse-connect, ...) take the subclass as
*the* datetime type, warn about its size and then reject real datetimes in
typed arguments. That can break a host, so it is opt-in:
``TRACETAPE_CLOCK_DATETIME=1`` or ``ClockInstrumentor().instrument(datetime=True)``
— safe when such extensions are imported before ``instrument()``.

The OTel SDK took ``time_ns`` by name at import, before any patch, so span
timestamps are always the real clock, also during replay.
"""

from __future__ import annotations

import copyreg
import datetime
import inspect
import time
from typing import Any, Collection

from opentelemetry.instrumentation.instrumentor import BaseInstrumentor

from tracetape.schemas.config import CLOCK_DATETIME, setting
from tracetape.schemas.events import EventKind

from ._patches import PatchSet
from ._scope import open_runs
from ._values import ValueSource, close_all, draw, recording

__all__ = ["ClockInstrumentor"]

_REAL_DATETIME = datetime.datetime

def _float(recorded: Any, args: tuple) -> float:
    return float(recorded)


def _int(recorded: Any, args: tuple) -> int:
    if not isinstance(recorded, int):
        raise ValueError(f"recorded {recorded!r} is not an integer")
    return recorded


def _iso(value: datetime.datetime) -> str:
    return value.isoformat()


def _datetime_from(recorded: Any, args: tuple) -> datetime.datetime:
    """A recorded ``isoformat()`` as the datetime ``target.now(tz)`` (args = (target, tz)) would give."""
    target, tz = (args + (None,))[:2]
    value = target.fromisoformat(recorded)
    if (tz is None) != (value.tzinfo is None):
        raise ValueError("recorded value and this call differ in time zone awareness")
    return value.astimezone(tz) if tz is not None else value


TIME = ValueSource("time.time", EventKind.CLOCK, decode=_float, floats=True)
TIME_NS = ValueSource("time.time_ns", EventKind.CLOCK, decode=_int)
MONOTONIC = ValueSource("time.monotonic", EventKind.CLOCK, decode=_float, floats=True)
MONOTONIC_NS = ValueSource("time.monotonic_ns", EventKind.CLOCK, decode=_int)
NOW = ValueSource("datetime.now", EventKind.CLOCK, encode=_iso, decode=_datetime_from)
UTCNOW = ValueSource("datetime.utcnow", EventKind.CLOCK, encode=_iso, decode=_datetime_from)
TODAY = ValueSource("datetime.today", EventKind.CLOCK, encode=_iso, decode=_datetime_from)


def _recording_classmethod(source: ValueSource, name: str) -> classmethod:
    """``datetime.<name>`` of the stand-in class: the C classmethod, recorded while a run is open.

    The C method is called bound to the class asked (a plain datetime for the stand-in itself, the
    user's own subclass otherwise), never through our override again.
    """
    method = inspect.getattr_static(_REAL_DATETIME, name)

    def live(target: type, *args: Any) -> Any:
        return method.__get__(None, target)(*args)

    def recorded(cls: type, *args: Any, **kwargs: Any) -> Any:
        target = _REAL_DATETIME if cls is _Datetime else cls
        args += tuple(kwargs.values())  # only now(tz=...) takes an argument
        if not _runs:
            return live(target, *args)
        return draw(source, live, target, *args)

    recorded.__name__ = recorded.__qualname__ = name
    recorded.__doc__ = method.__doc__
    return classmethod(recorded)


class _DatetimeMeta(type):
    """Makes the stand-in class answer isinstance/issubclass as ``datetime.datetime`` itself would."""

    def __instancecheck__(cls, instance: Any) -> bool:
        return isinstance(instance, _REAL_DATETIME) if cls is _Datetime else type.__instancecheck__(cls, instance)

    def __subclasscheck__(cls, subclass: type) -> bool:
        return issubclass(subclass, _REAL_DATETIME) if cls is _Datetime else type.__subclasscheck__(cls, subclass)


class _Datetime(_REAL_DATETIME, metaclass=_DatetimeMeta):
    """Stands in for ``datetime.datetime`` while instrumented; builds plain datetimes."""

    __slots__ = ()  # the same instance layout as the real class

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        return _REAL_DATETIME.__new__(_REAL_DATETIME if cls is _Datetime else cls, *args, **kwargs)

    now = _recording_classmethod(NOW, "now")
    utcnow = _recording_classmethod(UTCNOW, "utcnow")
    today = _recording_classmethod(TODAY, "today")


_Datetime.__module__ = "datetime"
_Datetime.__name__ = _Datetime.__qualname__ = "datetime"
_runs = open_runs()


def _reduce_datetime(value: datetime.datetime) -> tuple[Any, tuple]:
    # Pickle names classes by module path; while instrumented, that path leads to the stand-in,
    # which rebuilds a plain datetime (and the pickle loads in processes without tracetape too).
    return _Datetime, value.__reduce__()[1]


class ClockInstrumentor(BaseInstrumentor):
    """Registered as the ``tracetape_clock`` opentelemetry_instrumentor entry point."""

    # Class-level defaults: BaseInstrumentor is a singleton whose __init__ runs on every construction.
    _patches: PatchSet | None = None
    _saved_reducer: Any = None
    _with_datetime = False

    def instrumentation_dependencies(self) -> Collection[str]:
        return ()

    def _instrument(self, **kwargs: Any) -> None:
        patches = [
            (time, "time", recording(TIME, time.time)),
            (time, "time_ns", recording(TIME_NS, time.time_ns)),
            (time, "monotonic", recording(MONOTONIC, time.monotonic)),
            (time, "monotonic_ns", recording(MONOTONIC_NS, time.monotonic_ns)),
        ]
        self._with_datetime = bool(setting(CLOCK_DATETIME, kwargs.get("datetime")))
        if self._with_datetime:
            patches.append((datetime, "datetime", _Datetime))
            self._saved_reducer = copyreg.dispatch_table.get(_REAL_DATETIME)
            copyreg.pickle(_REAL_DATETIME, _reduce_datetime)
        self._patches = PatchSet(patches)
        self._patches.apply()

    def _uninstrument(self, **kwargs: Any) -> None:
        close_all()
        if self._with_datetime:
            if self._saved_reducer is None:
                copyreg.dispatch_table.pop(_REAL_DATETIME, None)
            else:
                copyreg.dispatch_table[_REAL_DATETIME] = self._saved_reducer
            self._with_datetime = False
        if self._patches is not None:
            self._patches.undo()
            self._patches = None
