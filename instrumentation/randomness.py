"""Random draws and uuids: recorded per task in compact batches, served back in order during replay.

Recorded at the two primitives everything in :mod:`random` is built on, so
``choice``, ``shuffle``, ``randint``, ``sample``, ``gauss``, ... replay
exactly without recording objects:

- ``random.random()`` and ``random.getrandbits(k)`` of the module's global
  generator (the module functions and the generator's own methods, which
  ``choice`` and friends call), kind ``random``;
- ``os.urandom(n)``, also as used by ``random.SystemRandom`` and therefore
  ``secrets``, kind ``random``;
- the seed of a new ``random.Random()`` (or ``seed()`` without argument),
  so generators the agent creates itself replay too, kind ``random``;
- ``uuid.uuid4()`` and ``uuid.uuid1()``, kind ``uuid`` (their own internal
  draws are not recorded twice).

Recording values rather than a seed plus a draw count keeps replay right
when threads or asyncio tasks share the global generator: each task gets
its own values back, whatever the interleaving.
See ``_values`` for batching and ``_scope`` for which callers are recorded.
"""

from __future__ import annotations

import functools
import os
import random
import sys
import uuid
from typing import Any, Callable, Collection

from opentelemetry.instrumentation.instrumentor import BaseInstrumentor

from tracetape.schemas.events import EventKind

from ._patches import PatchSet
from ._scope import module_excluded, open_runs
from ._values import ValueSource, close_all, draw, recording

__all__ = ["RandomInstrumentor"]

_GLOBAL = random._inst  # the generator behind the module-level functions
_SEED_BYTES = 32


def _unit_float(recorded: Any, args: tuple) -> float:
    value = float(recorded)
    if not 0.0 <= value < 1.0:
        raise ValueError(f"recorded {value!r} is not in [0, 1)")
    return value


def _bits(recorded: Any, args: tuple) -> int:
    if not isinstance(recorded, int) or recorded < 0 or recorded.bit_length() > args[0]:
        raise ValueError(f"recorded {recorded!r} is not a {args[0]}-bit value")
    return recorded


def _bytes_of_size(recorded: Any, args: tuple) -> bytes:
    value = bytes.fromhex(recorded)
    if len(value) != args[0]:
        raise ValueError(f"{len(value)} bytes were recorded, {args[0]} are asked")
    return value


def _seed(recorded: Any, args: tuple) -> int:
    if not isinstance(recorded, int):
        raise ValueError(f"recorded seed {recorded!r} is not an integer")
    return recorded


def _uuid(recorded: Any, args: tuple) -> uuid.UUID:
    return uuid.UUID(hex=recorded)


def _hex(value: Any) -> str:
    return value.hex


RANDOM = ValueSource("random.random", EventKind.RANDOM, decode=_unit_float, floats=True)
GETRANDBITS = ValueSource("random.getrandbits", EventKind.RANDOM, decode=_bits)
URANDOM = ValueSource("os.urandom", EventKind.RANDOM, encode=bytes.hex, decode=_bytes_of_size)
SEED = ValueSource("random.seed", EventKind.RANDOM, decode=_seed)
UUID4 = ValueSource("uuid.uuid4", EventKind.UUID, encode=_hex, decode=_uuid)
UUID1 = ValueSource("uuid.uuid1", EventKind.UUID, encode=_hex, decode=_uuid)

_runs = open_runs()
_real_urandom = os.urandom


def _fresh_seed() -> int:
    return int.from_bytes(_real_urandom(_SEED_BYTES), "big")


_RANDOM_INIT = random.Random.__init__.__code__


def _created_by_excluded_module() -> bool:
    """Whether the generator being seeded is created by infrastructure (``tempfile`` makes one lazily).

    For ``Random()`` the code that decides is the caller of the constructor, not the constructor.
    """
    frame = sys._getframe(2)  # 0: here, 1: seed(), 2: whoever called seed()
    if frame.f_code is _RANDOM_INIT and frame.f_back is not None:
        frame = frame.f_back
    return module_excluded(frame.f_globals.get("__name__"))


def _seed_wrapper(original: Callable[..., None]) -> Callable[..., None]:
    @functools.wraps(original)
    def seed(self: random.Random, a: Any = None, version: int = 2) -> None:
        if a is None and _runs and not _created_by_excluded_module():
            a = draw(SEED, _fresh_seed)
        original(self, a, version)

    return seed


def _uuid4_live() -> uuid.UUID:
    # Built here from the unpatched urandom, so one uuid is one recorded value, not two.
    return uuid.UUID(bytes=_real_urandom(16), version=4)


def uuid4() -> uuid.UUID:
    if not _runs:
        return _uuid4_live()
    return draw(UUID4, _uuid4_live)


def _uuid1_wrapper(original: Callable[..., uuid.UUID]) -> Callable[..., uuid.UUID]:
    @functools.wraps(original)
    def uuid1(node: int | None = None, clock_seq: int | None = None) -> uuid.UUID:
        if not _runs:
            return original(node, clock_seq)
        return draw(UUID1, original, node, clock_seq)

    return uuid1


class RandomInstrumentor(BaseInstrumentor):
    """Registered as the ``tracetape_random`` opentelemetry_instrumentor entry point."""

    # Class-level defaults: BaseInstrumentor is a singleton whose __init__ runs on every construction.
    _patches: PatchSet | None = None

    def instrumentation_dependencies(self) -> Collection[str]:
        return ()

    def _instrument(self, **kwargs: Any) -> None:
        patched_random = recording(RANDOM, _GLOBAL.random)
        patched_bits = recording(GETRANDBITS, _GLOBAL.getrandbits, 1)
        patched_urandom = recording(URANDOM, os.urandom, 1)
        self._patches = PatchSet([
            (random, "random", patched_random),
            (random, "getrandbits", patched_bits),
            (random, "_urandom", patched_urandom),
            (os, "urandom", patched_urandom),
            (random.Random, "seed", _seed_wrapper(random.Random.seed)),
            (uuid, "uuid4", functools.wraps(uuid.uuid4)(uuid4)),
            (uuid, "uuid1", _uuid1_wrapper(uuid.uuid1)),
        ])
        self._patches.apply()
        # The generator's methods, as looked up by choice(), shuffle(), ...: instance attributes
        # shadow the C methods, and removing them restores those exactly.
        vars(_GLOBAL).update(random=patched_random, getrandbits=patched_bits)

    def _uninstrument(self, **kwargs: Any) -> None:
        close_all()
        vars(_GLOBAL).pop("random", None)
        vars(_GLOBAL).pop("getrandbits", None)
        if self._patches is not None:
            self._patches.undo()
            self._patches = None
