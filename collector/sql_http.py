"""Read-only ClickHouse HTTP interface over the collector's embedded chDB store.

A chDB directory can be opened by one process only, so while the collector runs it is the
only way in for readers. Rather than inventing a protocol, this speaks the subset of the
ClickHouse HTTP interface that stock clients use (clickhouse-connect, curl, Grafana's
ClickHouse data source over HTTP), so they work unchanged against ``http://host:port``.

Read-only is enforced by the engine, not by parsing SQL: every reader connection runs
``SET readonly=1`` before it is used. readonly=1 (not 2) is deliberate: it also forbids
changing settings, so a caller can neither lift the result-size guard nor leave a changed
session behind on a pooled connection that the next caller (maybe another project) gets.
Clients learn this the ClickHouse way: ``system.settings`` reports every setting as
readonly, so clickhouse-connect sends none. Settings that do arrive as URL parameters are
handed to the engine with ``SET``, which accepts a value equal to the current one and
refuses any change with ClickHouse's own READONLY error, exactly as a readonly=1 user sees
on a real server. The exceptions are :data:`_IGNORED_PARAMS`: transport knobs with no
meaning here, plus ``max_execution_time``, which Grafana sends with every query and which
ClickHouse deployments mark CHANGEABLE_IN_READONLY for that reason.

readonly=1 is not enough on its own (files, table functions, several statements in one
request) and says nothing about projects: every query first passes :mod:`.sql_scope`, and
with tokens configured each project reads through its own connections, row-filtered to it.
"""

from __future__ import annotations

import base64
import email.parser
import email.policy
import hmac
import json
import logging
import queue
import re
import threading
import uuid
import zlib
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from .http_listener import Handler, HttpListener
from .sql_scope import Scope, ScopeRefusal, scope_settings

__all__ = ["SqlHttpServer"]

_log = logging.getLogger(__name__)

MAX_BODY_BYTES = 16 * 1024 * 1024
_POOL_SIZE = 3
_POOL_WAIT_S = 30.0
_MAX_QUERY_S = 60
_IGNORED_PARAMS = frozenset({
    "query_id", "session_id", "session_timeout", "session_check", "compress", "decompress",
    "enable_http_compression", "http_zlib_compression_level", "wait_end_of_query", "buffer_size",
    "send_progress_in_http_headers", "http_headers_progress_interval_ms",
    "cancel_http_readonly_queries_on_client_close", "client_protocol_version", "quota_key",
    "stacktrace", "max_execution_time", "user", "password", "database", "default_format", "query",
})
_SETTING_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_CODE = re.compile(r"Code: (\d+)\.")
_TRAILING_FORMAT = re.compile(r"\bFORMAT\s+(\w+)\s*;?\s*\Z", re.IGNORECASE)
# Status per exception code, as ClickHouse's exceptionCodeToHTTPStatus does; anything else is 500.
_STATUS = {194: 401, 192: 403, 193: 403, 497: 403, 516: 403, 48: 501, 159: 408, 229: 413}
_STATUS.update(dict.fromkeys((6, 8, 25, 26, 36, 44, 53, 62, 72, 117), 400))
_STATUS.update(dict.fromkeys((46, 47, 50, 56, 60, 63, 73, 78, 81, 115), 404))


class _Refused(Exception):
    """A failure of ours, reported to the client the way ClickHouse reports its exceptions."""

    def __init__(self, code: int, message: str, name: str) -> None:
        super().__init__(f"Code: {code}. DB::Exception: {message}. ({name})")


class SqlHttpServer:
    """Serves authenticated, read-only SQL over the ClickHouse HTTP protocol from a chDB path.

    ``tokens`` maps bearer token to project; ``None`` or empty disables auth (for loopback
    development only). Queries run on a small pool of chDB connections because one chDB
    connection must never run two queries at once; callers beyond the pool wait, bounded.
    Each project has its own pool (opened on its first query), confined to its rows; ``tls``
    (a :class:`~.tls.ServerTls`) serves HTTPS.
    """

    def __init__(self, chdb_path: str, *, host: str = "127.0.0.1", port: int = 0,
                 tokens: Mapping[str, str] | None = None, database: str = "tracetape",
                 max_result_bytes: int = 256 * 1024 * 1024, tls: Any = None) -> None:
        self._path, self._host, self._port, self._tls = chdb_path, host, port, tls
        self._tokens = {t.encode(): p for t, p in (tokens or {}).items()}
        self._database, self._max_result = database, max_result_bytes
        self._pools: dict[str | None, tuple[queue.Queue[Any], Scope]] = {}
        self._pools_lock = threading.Lock()
        self._conns: list[Any] = []
        self._listener: HttpListener | None = None
        self._version = ""

    @property
    def port(self) -> int:
        return self._listener.port if self._listener else self._port

    def start(self) -> None:
        pool, _ = self._pool_for(None if not self._tokens else next(iter(self._tokens.values())))
        conn = pool.get()
        try:
            self._version = conn.query("SELECT version()", "TSV").bytes().decode().strip()
        finally:
            pool.put(conn)
        self._listener = HttpListener("sql-http", self._host, self._port, _Handler, self, self._tls)
        self._listener.start()

    def stop(self, timeout: float = 5.0) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.stop()
        with self._pools_lock:
            pools, self._pools = list(self._pools.values()), {}
        for pool, _ in pools:
            for _ in range(_POOL_SIZE):  # waits for in-flight queries to hand theirs back
                try:
                    conn = pool.get(timeout=timeout)
                except queue.Empty:
                    _log.warning("sql http: a query outlived stop(); its chdb connection stays open")
                    break
                if conn is not None:
                    conn.close()
            pool.put(None)  # wakes any late request waiting for a connection
        self._conns.clear()

    def _pool_for(self, project: str | None) -> tuple[queue.Queue[Any], Scope]:
        """The connections of *project* (None: unscoped, authentication disabled), opened on first use."""
        import chdb

        with self._pools_lock:
            if project in self._pools:
                return self._pools[project]
            pool: queue.Queue[Any] = queue.Queue()
            scope = Scope(self._database)
            for _ in range(_POOL_SIZE):
                conn = chdb.connect(self._path)
                self._conns.append(conn)
                # Limits and the project filter first: once readonly=1 is set nobody, us included,
                # can change them.
                # max_execution_time frees a pinned connection from a runaway query (system.numbers);
                # the Python() table function would read this process's variables and readonly=1 lets it.
                conn.query(f"SET max_result_bytes={int(self._max_result)}, result_overflow_mode='throw', "
                           f"max_execution_time={_MAX_QUERY_S}, allow_python_table_function=0")
                if project is not None:
                    statement, scope.filtered = scope_settings(conn, self._database, project)
                    conn.query(statement)
                conn.query("SET readonly=1")
                pool.put(conn)
            scope.load_catalog(conn)
            self._pools[project] = (pool, scope)
            return pool, scope

    def _authenticate(self, token: str | None) -> str | None:
        """Return the caller's project; refuse like ClickHouse does a bad password."""
        if not self._tokens:
            return None
        if not token:
            raise _Refused(194, "Password required for user default", "REQUIRED_PASSWORD")
        project = None
        for known, owner in self._tokens.items():  # no early exit: timing must not reveal a prefix
            if hmac.compare_digest(known, token.encode()):
                project = owner
        if project is None:
            raise _Refused(516, "Authentication failed: password is incorrect, or there is no user "
                                "with such name", "AUTHENTICATION_FAILED")
        return project

    def _execute(self, project: str | None, sql: str, fmt: str, database: str | None, params: dict[str, str],
                 settings: dict[str, str]) -> tuple[bytes, dict[str, str]]:
        """Run one query of *project* on its pooled connection; every exit path returns the connection."""
        try:
            pool, scope = self._pool_for(project)
        except ScopeRefusal as exc:
            raise _Refused(497, str(exc), "ACCESS_DENIED") from None
        try:
            conn = pool.get(timeout=_POOL_WAIT_S)
        except queue.Empty:
            raise _Refused(202, "Too many simultaneous queries", "TOO_MANY_SIMULTANEOUS_QUERIES") from None
        if conn is None:
            pool.put(None)
            raise _Refused(210, "Server is shutting down", "NETWORK_ERROR")
        try:
            self._use_database(conn, database)
            for name, value in settings.items():
                if not _SETTING_NAME.match(name):
                    raise _Refused(115, f"Unknown setting '{name}'", "UNKNOWN_SETTING")
                conn.query(f"SET {name} = '{_quote(value)}'")
            sql = scope.check(conn, sql, params, database or self._database)
            result = conn.query(sql, fmt, params=params or None)
            if result.size() > self._max_result:
                raise _Refused(396, f"Limit for result exceeded, max bytes: {self._max_result}",
                               "TOO_MANY_ROWS_OR_BYTES")
            summary = {"read_rows": str(result.rows_read()), "read_bytes": str(result.bytes_read()),
                       "written_rows": "0", "written_bytes": "0", "result_bytes": str(result.size()),
                       "elapsed_ns": str(int(result.elapsed() * 1e9))}
            return result.bytes(), summary
        finally:
            pool.put(conn)

    def _use_database(self, conn: Any, database: str | None) -> None:
        # Issued per query because SQL can itself say USE and the connection is shared.
        if database:
            conn.query(f"USE `{_quote(database)}`")
            return
        try:
            conn.query(f"USE `{_quote(self._database)}`")
        except RuntimeError:  # the collector has not created its database yet
            conn.query("USE default")


def _content_type(fmt: str) -> str:
    for prefix, mime in (("JSON", "application/json; charset=UTF-8"), ("XML", "application/xml; charset=UTF-8"),
                         ("TabSeparated", "text/tab-separated-values; charset=UTF-8"),
                         ("TSV", "text/tab-separated-values; charset=UTF-8"), ("CSV", "text/csv; charset=UTF-8"),
                         ("Pretty", "text/plain; charset=UTF-8"), ("Values", "text/plain; charset=UTF-8")):
        if fmt.startswith(prefix):
            return mime
    return "application/octet-stream"  # Native, RowBinary, Parquet, Arrow, ...


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "\\'").replace("`", "\\`")


def _token(headers: Any, url: dict[str, str]) -> str | None:
    auth = headers.get("Authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer":
        return value.strip()
    if scheme.lower() == "basic":
        try:
            return base64.b64decode(value.strip(), validate=True).decode().partition(":")[2]
        except ValueError:
            raise _Refused(516, "Malformed Basic authorization header", "AUTHENTICATION_FAILED") from None
    return headers.get("X-ClickHouse-Key") or url.get("password")


class _Handler(Handler):
    timeout = 30  # seconds a silent client may hold a thread, mid-request or idle on keep-alive
    project: str | None = None  # the caller's project, set once authenticated

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _serve(self) -> None:
        split = urlsplit(self.path)
        url = dict(parse_qsl(split.query, keep_blank_values=True))
        query_id = url.get("query_id") or str(uuid.uuid4())
        try:
            body = self._read_body()
            if split.path == "/ping" or (split.path == "/" and self.command == "GET" and "query" not in url):
                return self._reply(200, b"Ok.\n", {"Content-Type": "text/html; charset=UTF-8"})
            if split.path != "/":
                return self._reply(404, f"There is no handle {split.path}. Use / or /ping.\n".encode(),
                                   {"Content-Type": "text/plain; charset=UTF-8"})
            self.project = self.server.owner._authenticate(_token(self.headers, url))
            sql = url.get("query", "")
            form = self._form_fields(body)
            if form is not None:
                url.update(form)
                sql = form.get("query", sql)
            elif body:
                sql = f"{sql}\n{body.decode()}" if sql else body.decode()
            if not sql.strip():
                raise _Refused(62, "Empty query", "SYNTAX_ERROR")
            params = {k[6:]: v for k, v in url.items() if k.startswith("param_")}
            settings = {k: v for k, v in url.items() if k not in _IGNORED_PARAMS and not k.startswith("param_")}
            fmt = url.get("default_format") or "TabSeparated"
            data, summary = self.server.owner._execute(self.project, sql, fmt, url.get("database"), params,
                                                         settings)
        except Exception as exc:  # chdb's errors, ours, and anything else: the client gets a ClickHouse error
            return self._fail(exc, query_id)
        match = _TRAILING_FORMAT.search(sql)
        fmt = match.group(1) if match else fmt
        self._reply(200, data, {"Content-Type": _content_type(fmt), "X-ClickHouse-Format": fmt,
                                "X-ClickHouse-Query-Id": query_id, "X-ClickHouse-Summary": json.dumps(summary)})

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks, total = [], 0
            for _ in range(MAX_BODY_BYTES):  # one chunk is at least one byte
                size = int(self.rfile.readline(64).split(b";")[0], 16)
                total += size
                if total > MAX_BODY_BYTES:
                    raise self._too_large()
                chunks.append(self.rfile.read(size))
                self.rfile.readline(64)
                if not size:
                    break
            raw = b"".join(chunks)
        else:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                raise self._too_large()
            raw = self.rfile.read(length)
        encoding = self.headers.get("Content-Encoding", "identity").lower()
        if encoding in ("identity", ""):
            return raw
        if encoding not in ("gzip", "deflate"):
            raise _Refused(89, f"Unknown compression method '{encoding}'", "UNKNOWN_COMPRESSION_METHOD")
        inflater = zlib.decompressobj(wbits=47)  # 47: accept both gzip and zlib headers
        try:
            data = inflater.decompress(raw, MAX_BODY_BYTES + 1)
        except zlib.error as exc:
            raise _Refused(271, f"Cannot decompress request body: {exc}", "CANNOT_DECOMPRESS") from None
        if len(data) > MAX_BODY_BYTES:
            raise self._too_large()
        return data

    def _too_large(self) -> _Refused:
        self.close_connection = True  # the unread rest of the body must not be parsed as a request
        return _Refused(229, f"Request body exceeds {MAX_BODY_BYTES} bytes", "QUERY_IS_TOO_LARGE")

    def _form_fields(self, body: bytes) -> dict[str, str] | None:
        """Fields of a multipart/form-data body, which clickhouse-connect uses for long parameters."""
        ctype = self.headers.get("Content-Type", "")
        if not ctype.startswith("multipart/form-data"):
            return None
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(f"Content-Type: {ctype}\r\n\r\n".encode() + body)
        fields = {}
        for part in message.iter_parts():
            if part.get_filename():
                raise _Refused(48, "External tables are not supported by this server", "NOT_IMPLEMENTED")
            payload = part.get_payload(decode=True) or b""
            fields[part.get_param("name", header="content-disposition")] = payload.decode()
        return fields

    def _fail(self, exc: Exception, query_id: str) -> None:
        message = str(exc).strip()
        found = _CODE.match(message)
        code = int(found.group(1)) if found else 1001
        if not found:
            _log.warning("sql http: unexpected failure", exc_info=exc)
            message = f"Code: 1001. DB::Exception: {type(exc).__name__}: {message}. (STD_EXCEPTION)"
        self._reply(_STATUS.get(code, 500), f"{message} (version {self.server.owner._version})\n".encode(), {
            "Content-Type": "text/plain; charset=UTF-8", "X-ClickHouse-Query-Id": query_id,
            "X-ClickHouse-Exception-Code": str(code)})

    def _reply(self, status: int, data: bytes, headers: dict[str, str]) -> None:
        self.reply(status, data, {**headers, "X-ClickHouse-Timezone": "UTC",
                                  "X-ClickHouse-Server-Display-Name": "tracetape"})
