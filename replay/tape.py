"""Tapes: one run in one self-contained file, replayable with no collector and no database.

A tape is a zip archive (stdlib everywhere, deflate-compressed, a CRC per
entry) of three entries:

- ``manifest.json``: format name and version, the run's metadata, the project
  it came from, the payloads' SHA-256s that were missing when it was made;
- ``spans.json``: the run's span rows, the same columns a store returns, as
  ``{"fields": [...], "rows": [[...], ...], "constants": {...}}``: a column
  holding one value in every row (run id, resource, ...) is stored once in
  ``constants``; the others as one list per span. A third of the size of one
  object per span, and as much faster to parse;
- ``blobs.pack``: every payload once, end to end, and ``blobs.json``, where
  each one is in the pack (SHA-256 → offset, size).

One pack rather than one entry per payload: opening a zip reads its whole
directory, and for a 10,000-step run that alone took longer than the rest of
loading it. Pack and index are read on the first payload read.

Every payload is checked against its SHA-256 when read, so a tape that was
truncated, edited or corrupted in transit fails loudly instead of replaying
something else. A reader refuses a newer major format version.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import time
import zipfile
from dataclasses import asdict
from typing import Any, Iterable, Mapping

from tracetape.schemas.errors import BlobError, TapeError

from ._source import SPAN_FIELDS
from .trajectory import RunInfo, Trajectory, build, bulk, verified

__all__ = ["Tape", "write_tape", "is_tape", "FORMAT", "VERSION"]

FORMAT = "tracetape-tape"
VERSION = 1
SUFFIX = ".tape"
_MANIFEST = "manifest.json"
_SPANS = "spans.json"
_PACK = "blobs.pack"
_INDEX = "blobs.json"


def is_tape(source: object) -> bool:
    """Whether *source* names a tape file (an existing file, or a ``.tape`` path)."""
    return isinstance(source, (str, os.PathLike)) and (
        str(source).endswith(SUFFIX) or os.path.isfile(source))


def write_tape(path: str | os.PathLike[str], run: RunInfo, spans: list[dict[str, Any]],
               blobs: Mapping[str, bytes], *, project: str = "") -> str:
    """Write a tape atomically (a reader never sees half a file); returns its path."""
    referenced = {h for span in spans for h in span["blobs"].values()}
    held = sorted(h for h in referenced if h in blobs)
    index, offset = {}, 0
    for digest in held:
        index[digest] = [offset, len(blobs[digest])]
        offset += len(blobs[digest])
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "created_ns": time.time_ns(),
        "project": project,
        "run": asdict(run) | {"tags": list(run.tags)},
        "span_count": len(spans),
        "blob_count": len(index),
        "missing_blobs": sorted(h for h in referenced if h not in blobs),
    }
    constants = {f: spans[0][f] for f in SPAN_FIELDS if spans and all(span[f] == spans[0][f] for span in spans)}
    fields = [f for f in SPAN_FIELDS if f not in constants]
    table = {"fields": fields, "constants": constants, "rows": [[span[f] for f in fields] for span in spans]}
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=".tape-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh, zipfile.ZipFile(fh, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
            archive.writestr(_MANIFEST, json.dumps(manifest, ensure_ascii=False, indent=1))
            archive.writestr(_SPANS, json.dumps(table, ensure_ascii=False, separators=(",", ":")))
            archive.writestr(_INDEX, json.dumps(index, separators=(",", ":")))
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
        if int(manifest.get("version", 0)) > VERSION:
            raise TapeError(f"{self.path} is tape format version {manifest['version']}; this tracetape reads "
                            f"up to {VERSION}: upgrade tracetape")
        self.manifest: dict[str, Any] = manifest
        known = RunInfo.__dataclass_fields__
        run = {key: value for key, value in manifest["run"].items() if key in known}  # newer tapes may add fields
        self.run = RunInfo(**(run | {"tags": tuple(run.get("tags", ()))}))
        self.project: str = manifest.get("project", "")
        self._spans: list[dict[str, Any]] | None = None
        self._pack: bytes | None = None
        self._index: dict[str, list[int]] | None = None

    @property
    def spans(self) -> list[dict[str, Any]]:
        """The run's span rows (parsed once and kept; :meth:`trajectory` parses its own)."""
        if self._spans is None:
            self._spans = self._read_spans()
        return self._spans

    def _read_spans(self) -> list[dict[str, Any]]:
        try:
            table = json.loads(self._archive.read(_SPANS))
            fields, constants = table["fields"], table.get("constants", {})
            lacking = set(SPAN_FIELDS) - set(fields) - set(constants)
            if lacking:
                raise TapeError(f"{self.path}: spans lack columns {sorted(lacking)}")
            keys, values = fields + list(constants), list(constants.values())
            with bulk():
                return [dict(zip(keys, row + values)) for row in table["rows"]]
        except (KeyError, ValueError, TypeError, zipfile.BadZipFile) as exc:
            raise TapeError(f"{self.path}: unreadable spans: {exc}") from exc

    @property
    def index(self) -> dict[str, list[int]]:
        """Where each payload is in the pack: SHA-256 → [offset, size]."""
        if self._index is None:
            try:
                self._index = json.loads(self._archive.read(_INDEX))
                self._pack = self._archive.read(_PACK)
            except (KeyError, ValueError, zipfile.BadZipFile) as exc:
                raise BlobError(f"the payloads of {self.path} are unreadable: {exc}") from exc
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

    def trajectory(self) -> Trajectory:
        return build(self.run, self._read_spans(), self.blob, self)
