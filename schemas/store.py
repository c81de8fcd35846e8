"""Where the data lives, and how every part opens it.

One address names a store: ``http(s)://[user:token@]host:port`` for a
ClickHouse server (or a tracetape collector's SQL endpoint), ``chdb:///dir``
or a plain directory for the embedded chDB engine. Collector and readers both
talk through clickhouse-connect, so they run the same SQL on either.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping
from urllib.parse import unquote, urlsplit

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

from .errors import MissingExtraError

__all__ = ["StoreAddress", "parse_store", "open_client"]


@dataclass(frozen=True)
class StoreAddress:
    kind: str  # "chdb" or "http"
    path: str = ""  # chdb directory
    url: str = ""  # http(s) URL without credentials
    username: str = ""
    password: str = ""

    def __str__(self) -> str:
        return self.url if self.kind == "http" else f"chdb://{self.path}"


def parse_store(spec: str) -> StoreAddress:
    """Parse a store address; a bare path means the embedded engine."""
    if spec.startswith(("http://", "https://")):
        parts = urlsplit(spec)
        netloc = parts.hostname or ""
        if parts.port:
            netloc = f"{netloc}:{parts.port}"
        return StoreAddress(
            "http",
            url=f"{parts.scheme}://{netloc}{parts.path}",
            username=unquote(parts.username or ""),
            password=unquote(parts.password or ""),
        )
    path = spec[len("chdb://"):] if spec.startswith("chdb://") else spec
    if not path:
        raise ValueError("empty store address")
    return StoreAddress("chdb", path=os.path.abspath(os.path.expanduser(path)))


def open_client(address: StoreAddress, database: str = "default", *,
                engine_options: Mapping[str, str] | None = None, **settings: Any) -> "Client":
    """A clickhouse-connect client for *address*; *settings* are session settings.

    *engine_options* are server-level settings of the embedded engine (``max_server_memory_usage``,
    ``background_pool_size``, ``mark_cache_size``...), which chDB takes only when it starts: they reach
    it if this is the process's first open connection to the store, and are ignored (by chDB) otherwise,
    so the process that owns the store (the collector) opens it first. A server ignores them: it has its
    own configuration.
    """
    try:
        import clickhouse_connect
    except ImportError as exc:
        raise MissingExtraError(
            "reading or writing the store needs clickhouse-connect: pip install 'tracetape[replay]'"
        ) from exc
    if address.kind == "chdb":
        os.makedirs(address.path, exist_ok=True)
        try:
            import chdb  # noqa: F401  (only to give a precise error)
        except ImportError as exc:
            raise MissingExtraError("the embedded store needs chdb: pip install 'tracetape[collector]'") from exc
        return clickhouse_connect.get_client(
            interface="chdb", path=address.path, database=database, settings=settings or None,
            chdb_options=dict(engine_options) if engine_options else None)
    parts = urlsplit(address.url)
    return clickhouse_connect.get_client(
        host=parts.hostname,
        port=parts.port or (8443 if parts.scheme == "https" else 8123),
        secure=parts.scheme == "https",
        username=address.username or "default",
        password=address.password,
        database=database,
        settings=settings or None,
        autogenerate_session_id=False,
    )
