"""Tapes: one run in one self-contained file, replayable with no collector and no database.

A tape is a zip archive (stdlib everywhere, a CRC per entry) of four entries:

- ``manifest.json``: format name and version, the run's metadata, the project
  it came from, the payloads' SHA-256s that were missing when it was made;
- ``steps.json``: the run's span rows (the columns a store returns), in step
  order, by column rather than by row. A column holding one value in every
  row (run id, resource, ...) is stored once; one whose values repeat (names,
  kinds, parent ids, tasks) as a table of its values plus one small integer
  per step; map columns (payload hashes and sizes, attributes) as one such
  column per key; span events only for the steps that have any. Payload
  hashes are positions in ``blobs.idx``. Loading is then a few list passes
  per column and one ``map(Step, ...)``: no dict per row, no re-sorting;
- ``blobs.idx``: every payload hash the run references, sorted, as raw 32
  bytes plus its size in ``blobs.pack`` (-1 when the payload was missing);
- ``blobs.pack``: the held payloads end to end, in ``blobs.idx`` order; read
  (and inflated) only on the first payload read.

One pack rather than one entry per payload: opening a zip reads its whole
directory, and for a 10,000-step run that alone took longer than the rest of
loading it.

Every payload is checked against its SHA-256 when read, so a tape that was
truncated, edited or corrupted in transit fails loudly instead of replaying
something else. A reader refuses a newer major format version; version 1
tapes (``spans.json`` as rows, ``blobs.json`` as a hash → [offset, size]
index) are still read.
"""

from __future__ import annotations

import io
import itertools
import json
import os
import struct
import tempfile
import time
import zipfile
from dataclasses import asdict
from typing import Any, Iterable, Mapping, Sequence

from tracetape.schemas.errors import BlobError, TapeError
from tracetape.schemas.events import EventKind

from ._source import SPAN_FIELDS
from .trajectory import (STEP_COLUMNS, RunInfo, Trajectory, build, bulk, events_of, order_spans, steps_of,
                         verified)

__all__ = ["Tape", "write_tape", "is_tape", "FORMAT", "VERSION"]

FORMAT = "tracetape-tape"
VERSION = 2
SUFFIX = ".tape"
_MANIFEST = "manifest.json"
_STEPS = "steps.json"
_DIGESTS = "blobs.idx"
_PACK = "blobs.pack"
_V1_SPANS, _V1_INDEX = "spans.json", "blobs.json"
_ENTRY = struct.Struct("<32sq")  # a blobs.idx entry: SHA-256, size in the pack (-1: not in the tape)
_MAPS = ("blobs", "blob_sizes", "attributes")
_KINDS = {kind.value: kind for kind in EventKind}


def is_tape(source: object) -> bool:
    """Whether *source* names a tape file (an existing file, or a ``.tape`` path)."""
    return isinstance(source, (str, os.PathLike)) and (
        str(source).endswith(SUFFIX) or os.path.isfile(source))


# -- columns --------------------------------------------------------------------

def _encode(values: list[Any]) -> Any:
    """A column as is, or as ``{"values", "codes"}`` when its values repeat enough to be worth a table."""
    table: dict[Any, int] = {}
    firsts: list[Any] = []
    codes = []
    for value in values:
        key = value if isinstance(value, (str, int)) or value is None else json.dumps(value, sort_keys=True)
        code = table.get(key)
        if code is None:
            code = table[key] = len(firsts)
            firsts.append(value)
        codes.append(code)
    return {"values": firsts, "codes": codes} if 2 * len(firsts) <= len(values) else values


def _decode(column: Any) -> list[Any]:
    if isinstance(column, list):
        return column
    values = column["values"]
    return [values[code] for code in column["codes"]]


def _encode_map(maps: list[Mapping[str, Any]], value: Any = None) -> dict[str, Any]:
    keys = sorted({key for one in maps for key in one})
    if value is not None:
        maps = [{key: value(v) for key, v in one.items()} for one in maps]
    return {"keys": keys, "columns": [_encode([one.get(key) for one in maps]) for key in keys]}


def _decode_map(encoded: Mapping[str, Any], count: int, value: Sequence[Any] | None = None) -> list[dict[str, Any]]:
    keys = encoded["keys"]
    if not keys:
        return [{} for _ in range(count)]
    columns = [_decode(column) for column in encoded["columns"]]
    if value is not None:
        columns = [[None if v is None else value[v] for v in column] for column in columns]
    # Keys every step has (most of them) go in with one dict(zip()); the others one by one where present.
    every = [n for n, column in enumerate(columns) if None not in column]
    every_keys = [keys[n] for n in every]
    maps = [dict(zip(every_keys, row)) for row in zip(*(columns[n] for n in every))] if every else \
        [{} for _ in range(count)]
    for n, (key, column) in enumerate(zip(keys, columns)):
        if n not in every:
            for one, value in zip(maps, column):
                if value is not None:
                    one[key] = value
    return maps


def _digest_table(spans: list[dict[str, Any]], blobs: Mapping[str, bytes]) -> tuple[list[str], bytes]:
    digests = sorted({digest for span in spans for digest in span["blobs"].values()})
    entries = b"".join(_ENTRY.pack(bytes.fromhex(d), len(blobs[d]) if d in blobs else -1) for d in digests)
    return digests, entries


def _steps_table(spans: list[dict[str, Any]], digests: list[str]) -> dict[str, Any]:
    count = len(spans)
    position = {digest: n for n, digest in enumerate(digests)}
    columns: dict[str, Any] = {}
    constants: dict[str, Any] = {}
    for name in SPAN_FIELDS:
        if name in _MAPS or name == "events":
            continue
        values = [span[name] for span in spans]
        if values and all(v == values[0] for v in values):
            constants[name] = values[0]
        else:
            columns[name] = _encode(values)
    maps = {"blobs": _encode_map([s["blobs"] for s in spans], position.__getitem__),
            "blob_sizes": _encode_map([s["blob_sizes"] for s in spans]),
            "attributes": _encode_map([s["attributes"] for s in spans])}
    events = [(n, [[int(t), name, dict(attrs)] for t, name, attrs in span.get("events") or ()])
              for n, span in enumerate(spans)]
    events = [(n, e) for n, e in events if e]
    return {"count": count, "constants": constants, "columns": columns, "maps": maps,
            "events": {"at": [n for n, _ in events], "lists": [e for _, e in events]}}


def write_tape(path: str | os.PathLike[str], run: RunInfo, spans: list[dict[str, Any]],
               blobs: Mapping[str, bytes], *, project: str = "") -> str:
    """Write a tape atomically (a reader never sees half a file); returns its path."""
    spans = order_spans(spans)
    digests, entries = _digest_table(spans, blobs)
    held = [d for d in digests if d in blobs]
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "created_ns": time.time_ns(),
        "project": project,
        "run": asdict(run) | {"tags": list(run.tags)},
        "span_count": len(spans),
        "blob_count": len(held),
        "missing_blobs": [d for d in digests if d not in blobs],
    }
    steps = _steps_table(spans, digests)
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=".tape-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh, zipfile.ZipFile(fh, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
            archive.writestr(_MANIFEST, json.dumps(manifest, ensure_ascii=False, indent=1))
            archive.writestr(_STEPS, json.dumps(steps, ensure_ascii=False, separators=(",", ":")))
            archive.writestr(_DIGESTS, entries, zipfile.ZIP_STORED)  # hashes do not compress
            with archive.open(_PACK, "w") as pack:
                for digest in held:
                    pack.write(blobs[digest])
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise
    return path


class Tape:
    """An open tape: its run, its spans, its payloads (verified on read).

    The file is read into memory once, so an open tape holds no file handle
    and there is nothing to close.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        try:
            with open(self.path, "rb") as fh:
                self._archive = zipfile.ZipFile(io.BytesIO(fh.read()))
            manifest = json.loads(self._archive.read(_MANIFEST))
        except FileNotFoundError as exc:
            raise TapeError(f"no tape at {self.path}") from exc
        except (OSError, zipfile.BadZipFile, KeyError, ValueError) as exc:
            raise TapeError(f"{self.path} is not a readable tracetape tape: {exc}") from exc
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise TapeError(f"{self.path} is not a tracetape tape (format {manifest.get('format')!r})")
        self.version = int(manifest.get("version", 0))
        if self.version > VERSION:
            raise TapeError(f"{self.path} is tape format version {self.version}; this tracetape reads "
                            f"up to {VERSION}: upgrade tracetape")
        self.manifest: dict[str, Any] = manifest
        known = RunInfo.__dataclass_fields__
        run = {key: value for key, value in manifest["run"].items() if key in known}  # newer tapes may add fields
        self.run = RunInfo(**(run | {"tags": tuple(run.get("tags", ()))}))
        self.project: str = manifest.get("project", "")
        self._spans: list[dict[str, Any]] | None = None
        self._digests: list[str] | None = None
        self._sizes: list[int] = []
        self._pack: bytes | None = None
        self._index: dict[str, tuple[int, int]] | None = None

    # -- spans and steps ------------------------------------------------------

    @property
    def spans(self) -> list[dict[str, Any]]:
        """The run's span rows (parsed once and kept; :meth:`trajectory` reads its own)."""
        if self._spans is None:
            self._spans = self._read_v1_spans() if self.version < 2 else self._rows(self._columns())
        return self._spans

    def trajectory(self) -> Trajectory:
        if self.version < 2:
            return build(self.run, self._read_v1_spans(), self.blob, self)
        columns = self._columns()
        if any(kind is EventKind.OTHER for kind in set(columns["kind"])):
            # Spans of other instrumentations: their kinds are mapped from their attributes, row by row.
            return build(self.run, self._rows(columns), self.blob, self)
        with bulk():
            steps = steps_of([columns[name] for name in STEP_COLUMNS], self.blob)
        return Trajectory(self.run, steps, self)

    def _read(self, entry: str) -> bytes:
        try:
            return self._archive.read(entry)
        except (KeyError, zipfile.BadZipFile, OSError) as exc:
            raise TapeError(f"{self.path}: unreadable {entry}: {exc}") from exc

    def _columns(self) -> dict[str, Any]:
        """Every span field as a list in step order, typed as Step wants it (kinds, tuples, events)."""
        digests = self.digests
        try:
            table = json.loads(self._read(_STEPS))
            count = table["count"]
            with bulk():
                columns: dict[str, Any] = {name: _decode(column) for name, column in table["columns"].items()}
                for name, value in table["constants"].items():
                    columns[name] = [value] * count
                for name in _MAPS:
                    columns[name] = _decode_map(table["maps"][name], count,
                                                digests if name == "blobs" else None)
                columns["kind"] = [_KINDS.get(kind, EventKind.OTHER) for kind in columns["kind"]]
                columns["finish_reasons"] = list(map(tuple, columns["finish_reasons"]))
                events: list[Any] = [()] * count
                for at, listed in zip(table["events"]["at"], table["events"]["lists"]):
                    events[at] = events_of(listed)
                columns["events"] = events
        except (KeyError, ValueError, TypeError, IndexError) as exc:
            raise TapeError(f"{self.path}: unreadable steps: {exc!r}") from exc
        lacking = set(SPAN_FIELDS) - set(columns)
        if lacking:
            raise TapeError(f"{self.path}: steps lack columns {sorted(lacking)}")
        return columns

    @staticmethod
    def _rows(columns: dict[str, Any]) -> list[dict[str, Any]]:
        columns = dict(columns, kind=[kind.value for kind in columns["kind"]],
                       finish_reasons=[list(f) for f in columns["finish_reasons"]],
                       events=[[tuple(e) for e in events] for events in columns["events"]])
        with bulk():
            return [dict(zip(SPAN_FIELDS, row)) for row in zip(*(columns[name] for name in SPAN_FIELDS))]

    def _read_v1_spans(self) -> list[dict[str, Any]]:
        try:
            table = json.loads(self._read(_V1_SPANS))
            fields, constants = table["fields"], table.get("constants", {})
            keys, values = fields + list(constants), list(constants.values())
            with bulk():
                rows = [dict(zip(keys, row + values)) for row in table["rows"]]
        except (KeyError, ValueError, TypeError) as exc:
            raise TapeError(f"{self.path}: unreadable spans: {exc}") from exc
        lacking = set(SPAN_FIELDS) - set(keys) - {"events"}  # version 1 did not keep span events
        if lacking:
            raise TapeError(f"{self.path}: spans lack columns {sorted(lacking)}")
        for row in rows:
            row.setdefault("events", [])
        return rows

    # -- payloads ----------------------------------------------------------------

    @property
    def digests(self) -> list[str]:
        """Every payload hash the run references, sorted (held in the tape or not)."""
        if self._digests is None:
            if self.version < 2:
                self._digests = sorted({d for span in self.spans for d in span["blobs"].values()})
            else:
                raw = self._read(_DIGESTS)
                if len(raw) % _ENTRY.size:
                    raise TapeError(f"{self.path}: {_DIGESTS} is truncated")
                entries = list(_ENTRY.iter_unpack(raw))
                self._digests = [digest.hex() for digest, _ in entries]
                self._sizes = [size for _, size in entries]
        return self._digests

    @property
    def index(self) -> dict[str, tuple[int, int]]:
        """Where each payload the tape holds is in the pack: SHA-256 → (offset, size)."""
        if self._index is None:
            try:
                if self.version < 2:
                    index = {d: (o, s) for d, (o, s) in json.loads(self._archive.read(_V1_INDEX)).items()}
                else:
                    held = [(d, s) for d, s in zip(self.digests, self._sizes) if s >= 0]
                    offsets = itertools.accumulate((s for _, s in held), initial=0)
                    index = {d: (o, s) for (d, s), o in zip(held, offsets)}
                self._pack = self._archive.read(_PACK)
            except (KeyError, ValueError, TypeError, zipfile.BadZipFile) as exc:
                raise BlobError(f"the payloads of {self.path} are unreadable: {exc}") from exc
            self._index = index
        return self._index

    def blob(self, digest: str) -> bytes:
        where = self.index.get(digest)
        if where is None:
            raise BlobError(f"blob {digest} is not in the tape {self.path}"
                            + (" (it was missing when the tape was made)"
                               if digest in self.manifest.get("missing_blobs", ()) else ""))
        offset, size = where
        return verified(digest, self._pack[offset:offset + size])  # type: ignore[index]

    def blobs(self, digests: Iterable[str]) -> dict[str, bytes]:
        held = self.index
        return {digest: self.blob(digest) for digest in set(digests) if digest in held}

    def all_blobs(self) -> dict[str, bytes]:
        return self.blobs(self.index)
