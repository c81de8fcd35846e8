"""Every collector setting, from flags, environment, a TOML file, or the default.

Precedence is flag, then ``TRACETAPE_*`` environment variable, then the
config file (``--config``), then the default. One table (:data:`FIELDS`)
drives all four, so a setting cannot exist in one layer and be forgotten in
another. A config file is read strictly (an unknown key or a wrong type fails
startup with its name): it is written once by an operator, and a silently
ignored typo in it would, for instance, leave authentication off. Environment
values that do not parse are logged and ignored, as everywhere in tracetape.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from typing import Any, Callable

from tracetape.schemas import config
from tracetape.schemas.config import Setting
from tracetape.schemas.errors import ConfigError
from tracetape.schemas.store import StoreAddress, parse_store

from .engine import engine_options

__all__ = ["CollectorConfig", "add_arguments", "load", "parse_tokens", "FIELDS"]


def parse_tokens(spec: str) -> dict[str, str]:
    """``tok1=projA,tok2=projB`` → {token: project}."""
    tokens = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        token, sep, project = item.partition("=")
        if not sep or not token or not project:
            raise ValueError(f"token entries look like TOKEN=PROJECT, got {item[:4]}…")
        tokens[token] = project
    return tokens


@dataclass(frozen=True)
class _Field:
    """One collector setting in every layer: dataclass field, flag, env var, file key."""

    name: str
    spec: Setting[Any]
    help: str
    convert: Callable[[Any], Any] = lambda value: value  # file/flag value → field value
    file_types: tuple[type, ...] = (str,)
    flag: str = ""  # default: --name-with-dashes

    @property
    def option(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")


def _listen(value: str) -> str | None:
    return value or None  # empty disables the listener


def _tokens(value: str | dict[str, str]) -> dict[str, str]:
    if isinstance(value, dict):
        if not all(isinstance(k, str) and isinstance(v, str) and k and v for k, v in value.items()):
            raise ValueError("tokens table maps token strings to project strings")
        return dict(value)
    return parse_tokens(value)


def _number(spec: Setting[int]) -> Callable[[Any], int]:
    """A flag or file value checked by the same parser as the env var (ranges included)."""
    return lambda value: spec.parse(str(value))


def _chdb_options(value: str) -> str:
    engine_options(value)  # checked now, so a malformed value fails at startup with its source
    return value


def _default(spec: Setting[Any]) -> Any:
    return field(default_factory=lambda: config.setting(spec))


FIELDS = (
    _Field("store", config.STORE, "ClickHouse URL (http(s)://user:password@host:port) or chDB directory"),
    _Field("data_dir", config.DATA_DIR, "directory of the embedded store, the spool and collector state"),
    _Field("database", config.DATABASE, "ClickHouse database"),
    _Field("grpc_listen", config.GRPC_LISTEN, "host:port of OTLP/gRPC, BlobService and gRPC health"),
    _Field("http_listen", config.HTTP_LISTEN,
           "host:port of OTLP/HTTP and /healthz /readyz /metrics; empty disables", _listen),
    _Field("sql_listen", config.SQL_LISTEN, "host:port of the read-only SQL endpoint; empty disables", _listen),
    _Field("tokens", config.TOKENS, "TOKEN=PROJECT,... bearer tokens; empty disables authentication", _tokens,
           (str, dict)),
    _Field("max_rows", config.BATCH_MAX_ROWS, "most span rows in one INSERT", _number(config.BATCH_MAX_ROWS),
           (int,), "--batch-max-rows"),
    _Field("max_delay_ms", config.BATCH_MAX_DELAY_MS, "how long the writer lingers for more rows",
           _number(config.BATCH_MAX_DELAY_MS), (int,), "--batch-max-delay-ms"),
    _Field("batch_max_bytes", config.BATCH_MAX_BYTES, "most export bytes in one INSERT",
           _number(config.BATCH_MAX_BYTES), (int,)),
    _Field("insert_threads", config.INSERT_THREADS,
           "INSERTs at once; 0: the cores, at most 4 (1: the lean setting)",
           _number(config.INSERT_THREADS), (int,)),
    _Field("writer_backlog_bytes", config.WRITER_BACKLOG_BYTES,
           "accepted bytes not yet inserted while the store is up; beyond, RESOURCE_EXHAUSTED",
           _number(config.WRITER_BACKLOG_BYTES), (int,)),
    _Field("spool_max_bytes", config.SPOOL_MAX_BYTES, "largest local spool; when full, UNAVAILABLE",
           _number(config.SPOOL_MAX_BYTES), (int,)),
    _Field("max_request_bytes", config.MAX_REQUEST_BYTES, "largest accepted export in bytes",
           _number(config.MAX_REQUEST_BYTES), (int,)),
    _Field("tls_cert", config.TLS_CERT, "PEM certificate chain: serve gRPC and HTTP over TLS (needs --tls-key)"),
    _Field("tls_key", config.TLS_KEY, "PEM private key of --tls-cert"),
    _Field("log_format", config.LOG_FORMAT, "text or json log lines", config.LOG_FORMAT.parse),
    _Field("chdb_options", config.CHDB_OPTIONS,
           "NAME=VALUE,... server settings of the embedded chDB engine, on top of the collector's own",
           _chdb_options),
)


@dataclass
class CollectorConfig:
    """Resolved collector settings, as :func:`load` builds them; built directly, fields default to the
    environment, then the built-in default."""

    store: str = _default(config.STORE)  # empty: chDB under data_dir
    data_dir: str = _default(config.DATA_DIR)
    database: str = _default(config.DATABASE)
    grpc_listen: str = _default(config.GRPC_LISTEN)
    # None here: a collector built in code opens no OTLP/HTTP port unless asked; load() (the CLI)
    # fills in the documented default, 127.0.0.1:4318.
    http_listen: str | None = None
    sql_listen: str | None = _default(config.SQL_LISTEN)
    tokens: dict[str, str] = field(default_factory=lambda: parse_tokens(config.setting(config.TOKENS)))
    max_rows: int = _default(config.BATCH_MAX_ROWS)
    max_delay_ms: int = _default(config.BATCH_MAX_DELAY_MS)
    batch_max_bytes: int = _default(config.BATCH_MAX_BYTES)
    insert_threads: int = _default(config.INSERT_THREADS)
    writer_backlog_bytes: int = _default(config.WRITER_BACKLOG_BYTES)
    spool_max_bytes: int = _default(config.SPOOL_MAX_BYTES)
    max_request_bytes: int = _default(config.MAX_REQUEST_BYTES)
    tls_cert: str = _default(config.TLS_CERT)
    tls_key: str = _default(config.TLS_KEY)
    log_format: str = _default(config.LOG_FORMAT)
    chdb_options: str = _default(config.CHDB_OPTIONS)

    def __post_init__(self) -> None:
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ConfigError("TLS needs both a certificate (--tls-cert) and its key (--tls-key)")

    def address(self) -> StoreAddress:
        return parse_store(self.store or os.path.join(self.data_dir, "store"))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--config`` and one flag per collector setting; an absent flag defers to env, file, default."""
    parser.add_argument("--config", metavar="PATH",
                        help=f"TOML file of collector settings ({config.CONFIG_FILE.env})")
    for item in FIELDS:
        parser.add_argument(item.option, dest=item.name, default=None, metavar=item.name.upper(),
                            type=int if item.file_types == (int,) else str,
                            help=f"{item.help} ({item.spec.env}, default {item.spec.default!r})")


def _read_file(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    table = data.get("collector", data)  # a [collector] table, or top-level keys
    if not isinstance(table, dict):
        raise ConfigError(f"config file {path}: [collector] must be a table")
    known = {item.name: item for item in FIELDS}
    for key, value in table.items():
        item = known.get(key)
        if item is None:
            raise ConfigError(f"config file {path}: unknown setting {key!r} (known: {', '.join(known)})")
        if not isinstance(value, item.file_types) or isinstance(value, bool):
            raise ConfigError(f"config file {path}: {key} must be {' or '.join(t.__name__ for t in item.file_types)}")
    return table


def _env(spec: Setting[Any]) -> Any:
    """The environment's value for *spec*, or None when unset or unparseable (logged by ``setting``)."""
    return config.setting(dataclasses.replace(spec, default=None))


def load(args: argparse.Namespace | None = None) -> CollectorConfig:
    """Resolve every setting: flag, then environment, then config file, then default."""
    given = vars(args) if args is not None else {}
    path = given.get("config") or config.setting(config.CONFIG_FILE)
    from_file = _read_file(path) if path else {}
    values: dict[str, Any] = {}
    for item in FIELDS:
        for layer, raw in (("flag", given.get(item.name)), ("env", _env(item.spec)),
                           ("file", from_file.get(item.name))):
            if raw is None:
                continue
            try:
                values[item.name] = item.convert(raw)
            except ValueError as exc:
                where = {"flag": item.option, "env": item.spec.env, "file": f"{path}: {item.name}"}[layer]
                raise ConfigError(f"{where}: {exc}") from exc
            break
        else:
            values[item.name] = item.convert(item.spec.default)
    return CollectorConfig(**values)
