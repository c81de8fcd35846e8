"""Reading runs back and running them again.

``load(run)`` gives an ordered, typed :class:`Trajectory`; ``player(run)``
replays it deterministically around the agent's code; ``diff(a, b)`` compares
two runs event by event; ``pull``/``push`` move a run into and out of a
self-contained tape file. Wherever a run is expected, a run id (or unique
prefix), a tape path, a :class:`Tape` or a :class:`Trajectory` will do.
"""

from __future__ import annotations

import os
from typing import Callable, Iterable, TypeVar, Union

from tracetape.schemas.errors import DivergenceError
from tracetape.schemas.events import EventKind

from ._diff import Diff, Entry, compare
from ._player import Mode, Player
from ._source import RunBlobs, Store, resolve_store
from .divergence import Candidate, Divergence
from .recorder import TapeRecorder
from .tape import Tape, is_tape, write_tape
from .trajectory import RunInfo, Step, Trajectory, build, run_info

__all__ = ["Candidate", "Diff", "Divergence", "DivergenceError", "Entry", "EventKind", "Mode", "Player", "RunInfo",
           "Step", "Store", "Tape", "TapeRecorder", "Trajectory", "diff", "load", "open_store", "player", "pull",
           "push"]

Source = Union[str, "os.PathLike[str]", Tape, Trajectory]
T = TypeVar("T")


def open_store(store: str | None = None, *, project: str | None = None, token: str | None = None,
               data_dir: str | None = None) -> Store:
    """The store to read, resolved as documented in :func:`resolve_store`."""
    return Store(resolve_store(store, data_dir), project=project, token=token)


def load(run: Source, *, store: str | Store | None = None, project: str | None = None,
         token: str | None = None) -> Trajectory:
    """Rebuild *run* (an id or unique prefix of one, or a tape) as a trajectory.

    Blob bytes are fetched lazily through the same store connection, so keep
    the passed :class:`Store` open while reading payloads, or let ``load``
    open its own (kept alive by the trajectory's steps).
    """
    if isinstance(run, Trajectory):
        return run
    if isinstance(run, Tape):
        return run.trajectory()
    if is_tape(run):
        return Tape(run).trajectory()
    source = store if isinstance(store, Store) else open_store(store, project=project, token=token)
    run_id = source.resolve_run(str(run))
    spans = source.spans(run_id)
    rows = source.runs(run_id=run_id, limit=1)
    return build(run_info(run_id, rows[0] if rows else None, spans), spans, source.blob, RunBlobs(source, run_id))


def _using(runs: tuple[Source, ...], store: str | Store | None, project: str | None, token: str | None,
           use: Callable[..., T]) -> T:
    """``use(*trajectories)``, with a store opened for them (if one is needed) closed afterwards."""
    if isinstance(store, Store) or all(isinstance(r, (Trajectory, Tape)) or is_tape(r) for r in runs):
        return use(*(load(r, store=store, project=project, token=token) for r in runs))
    with open_store(store, project=project, token=token) as owned:
        return use(*(load(r, store=owned) for r in runs))


def player(run: Source, mode: Mode | str = Mode.STRICT, *, fork_at: int | None = None,
           store: str | Store | None = None, project: str | None = None, token: str | None = None,
           allow: Iterable[str] = (), ignore: Iterable[str] = ()) -> Player:
    """A player for *run*; use it as ``with replay.player(run, mode=...) as p:`` around the agent's code.

    *allow* lists ``host:port`` endpoints live connections may still reach
    (the collector recording the replay is always allowed); *ignore* names
    extra request fields that matching disregards. Payloads are fetched up
    front, so a store opened here is closed before the replay starts.
    """
    return _using((run,), store, project, token,
                  lambda t: Player(t, mode, fork_at=fork_at, allow=allow, ignore=ignore))


def diff(a: Source, b: Source, *, store: str | Store | None = None, project: str | None = None,
         token: str | None = None) -> Diff:
    """Compare runs *a* and *b* event by event (see :mod:`tracetape.replay._diff`)."""
    return _using((a, b), store, project, token, compare)


def pull(run: str, out: str | os.PathLike[str], *, store: str | Store | None = None, project: str | None = None,
         token: str | None = None) -> str:
    """Write run *run* from the store into a tape file at *out*; returns the path."""
    def write(source: Store) -> str:
        run_id = source.resolve_run(run)
        spans = source.spans(run_id)
        rows = source.runs(run_id=run_id, limit=1)
        return write_tape(out, run_info(run_id, rows[0] if rows else None, spans), spans,
                          source.run_blobs(run_id), project=source.project)

    if isinstance(store, Store):
        return write(store)
    with open_store(store, project=project, token=token) as owned:
        return write(owned)


def push(tape: str | os.PathLike[str] | Tape, endpoint: str | None = None, *, token: str | None = None) -> int:
    """Upload a tape's payloads and spans to a collector, into the project of *token*; returns the spans sent."""
    from ._push import push_tape

    return push_tape(tape if isinstance(tape, Tape) else Tape(tape), endpoint, token=token)
