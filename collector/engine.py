"""Memory of the embedded engine: the server settings the collector starts chDB with, and freed memory.

chDB runs inside the collector, so the engine's memory is the collector's.
Sampled over bench/ingest.py (``/proc`` RSS and chDB's ``system.jemalloc_stats``
every 0.2 s), the engine's allocator held far more than the engine used:
jemalloc keeps freed pages for 5 s before returning them, and with two
INSERTs side by side and a merge it held ~100-130 MB of freed pages above the
~200 MB in use. A purge after every INSERT (``SYSTEM JEMALLOC PURGE``, ~15 ms)
only helped between INSERTs. chDB's jemalloc is built with the ``je_``
prefix, so it reads ``JE_MALLOC_CONF``, not ``MALLOC_CONF`` (why an earlier
attempt with the latter changed nothing), and its memory worker purges only
in proportion to ``max_server_memory_usage`` (the machine's RAM).
:func:`tune_engine_allocator` has freed pages returned after 50 ms instead
(unless the operator set ``JE_MALLOC_CONF``), and the per-INSERT purge is
then left out. Over 1M spans, 2 INSERTs of 32 MB: peak RSS 478-523 MB
against 489-533 MB with 5 s and the purge; returning pages at once (0 ms)
cut it to 392 MB but halved the throughput (every free a system call, every
reuse a page fault). The Python side's allocator (glibc) kept ~25 MB free in
its arenas after large request buffers: ``malloc_trim`` returns it after
each INSERT.

:data:`DEFAULT_OPTIONS` are the server settings the collector needs, whatever
the machine (ClickHouse sizes its defaults for a dedicated server):

* one merge at a time (``background_pool_size`` 1, concurrency ratio 1): a
  merge of ~10 span parts holds 30-65 MB (schemas/ddl/0006), and with the
  default of up to four at once, three were seen holding 139 MB together; on
  a 2-core machine the inserts need the CPU anyway;
* caches of marks and primary keys bounded at tens of MB instead of 5 GB
  each: they only grow with reads, and a long-running collector is read by
  dashboards.

The engine is one shared library of ~540 MB (~390 MB of machine code). Its
start-up code alone (registering every function, format and table engine)
leaves ~200 MB of it mapped and counted in the collector's RSS, of which an
INSERT runs ~50 MB. Those pages are clean copies of the file: the kernel
drops them itself under memory pressure and maps them back from the page
cache when they run again. :func:`shed_engine_code` drops them at once (after
start-up, and again at most once a minute after an INSERT), so the
collector's resident memory is what it uses: measured, an idle collector
went from ~290 to ~155 MB, and re-mapping what the next INSERT runs cost it
~5 ms. Only mappings that hold no private (written) page are touched, so no
state is ever lost: the relocated read-only data, for one, keeps its pages.

The collector process also keeps pyarrow, pandas and numpy out
(:func:`keep_dataframe_libraries_out`): chDB and clickhouse-connect import
them when they are installed, for DataFrame and Arrow results the collector
never asks for, and they held ~38 MB (27 MB of mapped code, 11 MB of heap)
of an idle collector's ~360 MB.

Operators add or override any server setting with ``TRACETAPE_CHDB_OPTIONS``
(``--chdb-options``). chDB silently ignores a name it does not know, so
:func:`check_options` fails startup on one instead.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import re
import sys
import threading
import time
from typing import Any, Mapping

from tracetape.schemas.config import ENGINE_ALLOCATOR, export_default
from tracetape.schemas.errors import ConfigError

__all__ = ["DEFAULT_OPTIONS", "engine_options", "check_options", "release_memory",
           "shed_engine_code", "tune_engine_allocator", "keep_dataframe_libraries_out"]

_log = logging.getLogger(__name__)

DEFAULT_OPTIONS: Mapping[str, str] = {
    "background_pool_size": "1",
    "background_merges_mutations_concurrency_ratio": "1",
    "mark_cache_size": str(64 << 20),
    "index_mark_cache_size": str(16 << 20),
    "primary_index_cache_size": str(64 << 20),
}
_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")
_SHED_EVERY_S = 60.0
_MADV_DONTNEED = 4
_VMA = re.compile(r"([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(.*)")
_shed_lock = threading.Lock()
_last_shed = float("-inf")
_allocator_tuned = False  # ENGINE_ALLOCATOR's default in force since before chDB was loaded
_DATAFRAME_LIBRARIES = ("pyarrow", "pandas", "numpy")


def engine_options(spec: str) -> dict[str, str]:
    """:data:`DEFAULT_OPTIONS` updated by ``name=value,...`` (*spec*, as the setting is written)."""
    options = dict(DEFAULT_OPTIONS)
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, sep, value = (text.strip() for text in item.partition("="))
        if not sep or not _NAME.match(name) or not value:
            raise ValueError(f"chDB options look like name=value,..., got {item!r}")
        options[name] = value
    return options


def check_options(client: Any, options: Mapping[str, str]) -> None:
    """Fail on an option that is no server setting; warn on one the running engine does not have (chDB
    takes them only when it starts, i.e. on the process's first connection to the store)."""
    if not options:
        return
    rows = client.query("SELECT name, value FROM system.server_settings WHERE name IN {names:Array(String)}",
                        parameters={"names": list(options)}).result_rows
    actual = {name: value for name, value in rows}
    unknown = sorted(set(options) - set(actual))
    if unknown:
        raise ConfigError(f"unknown chDB server setting(s): {', '.join(unknown)} (see system.server_settings)")
    for name, value in options.items():
        if actual[name] != value:
            _log.warning("chDB server setting %s is %s, not %s: the engine was started before the collector "
                         "opened the store", name, actual[name], value)


def release_memory(client: Any) -> None:
    """Return freed pages to the OS, and the engine's idle code at most once a minute (see the module
    docstring). Only a chDB client: a server manages its own memory. A failure is logged, never raised:
    the data is in by then. The engine's allocator is purged here only when :func:`tune_engine_allocator`
    did not make it return freed pages by itself (a purge costs an INSERT ~15 ms)."""
    if not _allocator_tuned:
        try:
            client.command("SYSTEM JEMALLOC PURGE")
        except Exception as exc:  # noqa: BLE001 - memory hygiene must not fail an INSERT that succeeded
            _log.warning("could not return freed engine memory: %s", str(exc)[:300])
    trim = getattr(_libc(), "malloc_trim", None)  # glibc only
    if trim is not None:
        trim(0)
    if time.monotonic() - _last_shed >= _SHED_EVERY_S:
        shed_engine_code()


def tune_engine_allocator() -> None:
    """Have the engine's allocator return freed pages after 50 ms (see the module docstring); must run
    before chDB is loaded, and leaves an operator's own ``JE_MALLOC_CONF`` alone."""
    global _allocator_tuned
    if "chdb._chdb" in sys.modules:
        _log.warning("chDB was loaded before the collector could tune its allocator; memory may run higher")
        return
    _allocator_tuned = export_default(ENGINE_ALLOCATOR)


@functools.lru_cache(maxsize=1)
def _libc() -> Any:
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def shed_engine_code() -> int:
    """Unmap the embedded engine's clean code and constant pages from this process (see the module
    docstring); returns the bytes of the mappings shed, 0 where that cannot be done (no chDB loaded,
    not Linux)."""
    global _last_shed
    library = getattr(sys.modules.get("chdb._chdb"), "__file__", None)
    if not library:
        return 0
    library = os.path.realpath(library)
    with _shed_lock:
        _last_shed = time.monotonic()
        try:
            madvise = _libc().madvise
            madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
            shed = 0
            for start, end in _clean_mappings(library):
                if madvise(start, end - start, _MADV_DONTNEED) == 0:
                    shed += end - start
            return shed
        except (OSError, AttributeError) as exc:  # no /proc/self/smaps or no madvise: nothing to shed
            _log.debug("engine code not shed: %s", exc)
            return 0


def _clean_mappings(path: str) -> list[tuple[int, int]]:
    """(start, end) of this process's read-only mappings of *path* without a private page (``smaps``)."""
    found: list[tuple[int, int]] = []
    current: tuple[int, int] | None = None
    with open("/proc/self/smaps", encoding="utf-8", errors="replace") as smaps:
        for line in smaps:
            vma = _VMA.match(line)
            if vma is not None:
                readonly = vma[3] in ("r-xp", "r--p") and vma[4] == path
                current = (int(vma[1], 16), int(vma[2], 16)) if readonly else None
            elif current is not None and line.startswith("Anonymous:"):
                if line.split()[1] == "0":
                    found.append(current)
                current = None
    return found


def keep_dataframe_libraries_out() -> None:
    """Make ``import pyarrow`` / ``pandas`` / ``numpy`` fail in this process, unless one is loaded already
    (see the module docstring). chDB and clickhouse-connect treat them as optional and go on without
    them. For the collector's own process only (``server.run``): a program that embeds a collector may
    use them itself."""
    for name in _DATAFRAME_LIBRARIES:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type] - None in sys.modules: ImportError
