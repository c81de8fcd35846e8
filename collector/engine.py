"""Memory of the embedded engine: the server settings the collector starts chDB with, and freed memory.

chDB runs inside the collector, so the engine's memory is the collector's.
Sampled over bench/ingest.py (``/proc`` RSS and chDB's ``system.jemalloc_stats``
every 0.25 s), the engine's allocator held far more than the engine used: one
32 MB INSERT peaks at ~100 MB, yet left jemalloc ~175 MB resident above what it
held before (arrays grown by doubling free every smaller size on the way, and
jemalloc keeps freed pages for 5 s before returning them), and two inserters
plus a merge left 300-400 MB resident for ~100-230 MB in use. Handing freed
pages back after every INSERT (:func:`release_memory`, ~20 ms) took the
resident figure back to within a few MB of what is in use. chDB reads no
``MALLOC_CONF`` and its memory worker purges only in proportion to
``max_server_memory_usage``, hence the explicit purge.

:data:`DEFAULT_OPTIONS` are the server settings the collector needs, whatever
the machine (ClickHouse sizes its defaults for a dedicated server):

* one merge at a time (``background_pool_size`` 1, concurrency ratio 1): a
  merge of ~10 span parts holds 30-65 MB (schemas/ddl/0006), and with the
  default of up to four at once, three were seen holding 139 MB together; on
  a 2-core machine the inserts need the CPU anyway;
* caches of marks and primary keys bounded at tens of MB instead of 5 GB
  each: they only grow with reads, and a long-running collector is read by
  dashboards.

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

import logging
import re
import sys
from typing import Any, Mapping

from tracetape.schemas.errors import ConfigError

__all__ = ["DEFAULT_OPTIONS", "engine_options", "check_options", "release_memory", "keep_dataframe_libraries_out"]

_log = logging.getLogger(__name__)

DEFAULT_OPTIONS: Mapping[str, str] = {
    "background_pool_size": "1",
    "background_merges_mutations_concurrency_ratio": "1",
    "mark_cache_size": str(64 << 20),
    "index_mark_cache_size": str(16 << 20),
    "primary_index_cache_size": str(64 << 20),
}
_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")
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
    """Return the engine's freed pages to the OS (see the module docstring). Only a chDB client: a server
    manages its own memory. A failure is logged, never raised: the data is in by then."""
    try:
        client.command("SYSTEM JEMALLOC PURGE")
    except Exception as exc:  # noqa: BLE001 - memory hygiene must not fail an INSERT that succeeded
        _log.warning("could not return freed engine memory: %s", str(exc)[:300])


def keep_dataframe_libraries_out() -> None:
    """Make ``import pyarrow`` / ``pandas`` / ``numpy`` fail in this process, unless one is loaded already
    (see the module docstring). chDB and clickhouse-connect treat them as optional and go on without
    them. For the collector's own process only (``server.run``): a program that embeds a collector may
    use them itself."""
    for name in _DATAFRAME_LIBRARIES:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type] - None in sys.modules: ImportError
