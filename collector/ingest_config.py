"""The ingest path's settings, to be merged into ``schemas/config.py``.

Declared here (and read only through :func:`tracetape.schemas.config.setting`)
until they move to the one settings module; nothing reads the environment directly.
"""

from __future__ import annotations

from tracetape.schemas.config import Setting

__all__ = ["MAX_ATTRIBUTE_BYTES", "SPOOL_MAX_BYTES", "WRITER_BACKLOG_BYTES", "BATCH_MAX_BYTES",
           "FAULT_STORE_DOWN_FILE"]


def _parse_size(raw: str) -> int:
    value = int(raw)
    if value < 1024:
        raise ValueError(f"must be at least 1024 bytes: {raw!r}")
    return value


MAX_ATTRIBUTE_BYTES = Setting(
    "TRACETAPE_MAX_ATTRIBUTE_BYTES", 4 * 1024 * 1024, _parse_size,
    "Longest string kept in a span (attribute value, name, status message); longer ones are cut and marked.")
SPOOL_MAX_BYTES = Setting(
    "TRACETAPE_SPOOL_MAX_BYTES", 1 << 30, _parse_size,
    "Largest local spool of data the store could not take yet; when it is full, exports get UNAVAILABLE.")
WRITER_BACKLOG_BYTES = Setting(
    "TRACETAPE_WRITER_BACKLOG_BYTES", 256 * 1024 * 1024, _parse_size,
    "Accepted export bytes not yet in the store while it is up; beyond it exports get RESOURCE_EXHAUSTED "
    "with a retry delay (while the store is down, the spool's own bound applies).")
BATCH_MAX_BYTES = Setting(
    "TRACETAPE_BATCH_MAX_BYTES", 32 * 1024 * 1024, _parse_size, "Most export bytes in one INSERT.")
FAULT_STORE_DOWN_FILE = Setting(
    "TRACETAPE_FAULT_STORE_DOWN_FILE", "", str,
    "Test and drill hook: while this file exists, every insert fails as if the store were down.")
