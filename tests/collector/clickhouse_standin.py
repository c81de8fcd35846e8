"""A ClickHouse server stand-in: the ClickHouse HTTP interface over chDB, writable, as its own process.

No ClickHouse server can run where the tests run (no Docker daemon, no network, no server binary),
so the collector's server-URL mode is tested against this: the ClickHouse engine itself (chDB)
behind the part of the HTTP interface that clickhouse-connect uses. It stands for the outside world,
like the mock model servers; it is not the collector's read endpoint (``collector/sql_http.py``,
read-only by design) and shares only the HTTP listener with it.

Request semantics are ClickHouse's: the query comes in the ``query`` URL parameter or the body;
the data of an ``INSERT … FORMAT F`` follows it (in the body, after the query if that is there too); other URL
parameters are ``param_*`` query parameters or settings. One translation is needed because chDB
cannot stream a body into ``INSERT … SELECT … FROM input(structure)``: the body is written to a
file and ``input(structure)`` becomes ``file(path, F, structure)``, the same rows parsed by the same
engine. One connection serves one query at a time; there is no authentication.

Run: ``python clickhouse_standin.py CHDB_DIR PORT`` (SIGTERM stops it).
"""

from __future__ import annotations

import os
import re
import signal
import sys
import tempfile
import threading
import zlib
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import chdb
import lz4.frame

from tracetape.collector.http_listener import Handler, HttpListener

_TRANSPORT = frozenset({"query", "database", "default_format", "query_id", "session_id", "compress", "decompress",
                        "enable_http_compression", "wait_end_of_query", "send_progress_in_http_headers",
                        "http_headers_progress_interval_ms", "client_protocol_version", "user", "password"})
_INSERT_FORMAT = re.compile(r"\A\s*(INSERT\b.*?)\s+FORMAT\s+(\w+)\s*\Z", re.IGNORECASE | re.DOTALL)
_INSERT_HEAD = re.compile(rb"\A(\s*INSERT\b.*?\bFORMAT\s+\w+)[ \t]*\r?\n?", re.IGNORECASE | re.DOTALL)
_INPUT = re.compile(r"\binput\(", re.IGNORECASE)
_CODE = re.compile(r"Code: (\d+)\.")


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class _Engine:
    def __init__(self, path: str) -> None:
        self.conn = chdb.connect(path)
        self.lock = threading.Lock()

    def run(self, sql: str, data: bytes | None, fmt: str, params: dict[str, str], settings: dict[str, str],
            database: str | None) -> bytes:
        with self.lock:
            if database:
                self.conn.query(f"USE `{database}`")
            for name, value in settings.items():
                self.conn.query(f"SET {name} = {_quote(value)}")
            insert = _INSERT_FORMAT.match(sql) if data is not None else None
            if insert is None:
                return self.conn.query(sql, fmt, params=params or None).bytes()
            head, data_format = insert.groups()
            if _INPUT.search(head):
                with tempfile.NamedTemporaryFile(suffix=".body") as body:
                    body.write(data or b"")
                    body.flush()
                    self.conn.query(_INPUT.sub(f"file('{body.name}', '{data_format}', ", head, count=1))
            else:
                with self.conn.send_insert(head, data_format) as inserter:
                    inserter.append(data or b"")
                    inserter.finish()
            return b""


class _Handler(Handler):
    timeout = 30

    def do_GET(self) -> None:  # noqa: N802
        self._serve()

    def do_POST(self) -> None:  # noqa: N802
        self._serve()

    def _serve(self) -> None:
        split = urlsplit(self.path)
        url = dict(parse_qsl(split.query, keep_blank_values=True))
        body = self._body()
        encoding = self.headers.get("Content-Encoding", "")
        if encoding == "lz4":
            body = lz4.frame.decompress(body)
        elif encoding in ("gzip", "deflate"):
            body = zlib.decompress(body, 47)
        if split.path == "/ping" or (self.command == "GET" and "query" not in url):
            return self.reply(200, b"Ok.\n", {"Content-Type": "text/plain"})
        sql, data = url.get("query"), None
        if sql is None and (head := _INSERT_HEAD.match(body)):
            sql, data = head.group(1).decode(), body[head.end():]  # the data follows FORMAT in the body
        elif sql is None:
            sql = body.decode()
        elif body and _INSERT_FORMAT.match(sql):
            data = body
        elif body:
            sql = f"{sql}\n{body.decode()}"
        params = {k[6:]: v for k, v in url.items() if k.startswith("param_")}
        settings = {k: v for k, v in url.items() if k not in _TRANSPORT and not k.startswith("param_")}
        try:
            result = self.server.owner.run(sql, data, url.get("default_format") or "TabSeparated", params, settings,
                                           url.get("database"))
        except Exception as exc:  # noqa: BLE001 - reported to the client as ClickHouse reports errors
            found = _CODE.search(str(exc))
            return self.reply(500, f"{exc}\n".encode(), {"Content-Type": "text/plain",
                                                          "X-ClickHouse-Exception-Code": found.group(1) if found
                                                          else "1001"})
        self.reply(200, result, {"Content-Type": "application/octet-stream", "X-ClickHouse-Timezone": "UTC"})

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() != "chunked":
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))
        chunks = []
        for _ in range(1 << 20):  # bounded; the client ends with a zero-size chunk
            size = int(self.rfile.readline(64).split(b";")[0], 16)
            chunks.append(self.rfile.read(size))
            self.rfile.readline(64)
            if not size:
                break
        return b"".join(chunks)


def main(path: str, port: int) -> None:
    listener = HttpListener("clickhouse-standin", "127.0.0.1", port, _Handler, _Engine(path))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    listener.start()
    stop.wait()
    listener.stop()
    os._exit(0)  # chDB's engine threads need not outlive a test server


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
