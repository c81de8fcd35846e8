"""Reading runs back: ``load(run)`` gives an ordered, typed :class:`Trajectory`."""

from __future__ import annotations

from tracetape.schemas.events import EventKind

from ._source import Store, resolve_store
from .trajectory import RunInfo, Step, Trajectory, build, run_info

__all__ = ["EventKind", "RunInfo", "Step", "Store", "Trajectory", "load", "open_store"]


def open_store(store: str | None = None, *, project: str | None = None, token: str | None = None,
               data_dir: str | None = None) -> Store:
    """The store to read, resolved as documented in :func:`resolve_store`."""
    return Store(resolve_store(store, data_dir), project=project, token=token)


def load(run: str, *, store: str | Store | None = None, project: str | None = None,
         token: str | None = None) -> Trajectory:
    """Rebuild run *run* (an id or a unique prefix) as a trajectory.

    Blob bytes are fetched lazily through the same store connection, so keep
    the passed :class:`Store` open while reading payloads, or let ``load``
    open its own (kept alive by the trajectory's steps).
    """
    source = store if isinstance(store, Store) else open_store(store, project=project, token=token)
    run_id = source.resolve_run(run)
    spans = source.spans(run_id)
    rows = source.runs(run_id=run_id, limit=1)
    return build(run_info(run_id, rows[0] if rows else None, spans), spans, source.blob)
