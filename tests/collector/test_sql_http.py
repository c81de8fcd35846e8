"""The read-only SQL endpoint, exercised with the stock clients it must serve (clickhouse-connect, urllib).

Each test gets its own chDB directory. chDB holds one directory per process and switches only once
every connection to the previous one is closed, so each test opening a fresh directory also checks
that the previous test's server and writer released theirs.
"""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import http.client
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator
from urllib.error import HTTPError, URLError

import chdb
import clickhouse_connect
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError

from tracetape.collector.sql_http import SqlHttpServer

TOKEN = "tok-alpha"
TRICKY = "it's a \\ \"quoted\"\tvalue — é 漢字 🚀"
TS = dt.datetime(2024, 5, 6, 7, 8, 9, 123456)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[tuple[Path, Any]]:
    """A chDB directory with tracetape.spans (three rows of project alpha, one of beta) and its writer."""
    path = tmp_path / "store"
    writer = chdb.connect(str(path))
    try:
        writer.query("CREATE DATABASE tracetape")
        writer.query("CREATE TABLE tracetape.spans (project String, name String, n UInt64, ts DateTime64(9), "
                     "attrs Map(String, String), tags Array(String), kind LowCardinality(String)) "
                     "ENGINE = MergeTree ORDER BY n")
        writer.query("INSERT INTO tracetape.spans VALUES "
                     "('alpha', 'plain', 1, '2024-05-06 07:08:09.123456789', {'k': 'v'}, ['a', 'b'], 'llm'), "
                     "('alpha', {tricky:String}, 2, '2024-05-06 07:08:09.123456789', {}, [], 'tool'), "
                     "('alpha', 'third', 3, '2024-05-06 07:08:09.123456789', {}, [], 'llm'), "
                     "('beta', 'hidden', 4, '2024-05-06 07:08:09.123456789', {}, [], 'llm')",
                     params={"tricky": TRICKY.replace("\\", "\\\\").replace("\t", "\\t")})
        yield path, writer
    finally:
        writer.close()


@pytest.fixture
def server(store: tuple[Path, Any]) -> Iterator[SqlHttpServer]:
    srv = SqlHttpServer(str(store[0]), tokens={TOKEN: "alpha"})
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def connect(srv: SqlHttpServer, **auth: Any) -> Any:
    auth = auth or {"username": "reader", "password": TOKEN}
    return clickhouse_connect.get_client(host="127.0.0.1", port=srv.port, database="tracetape", **auth)


@pytest.fixture
def client(server: SqlHttpServer) -> Iterator[Any]:
    cli = connect(server)
    try:
        yield cli
    finally:
        cli.close()


def fetch(srv: SqlHttpServer, path: str, data: bytes | None = None, **headers: str) -> tuple[int, dict, bytes]:
    basic = base64.b64encode(f"reader:{TOKEN}".encode()).decode()
    request = urllib.request.Request(f"http://127.0.0.1:{srv.port}{path}", data=data,
                                     headers={"Authorization": f"Basic {basic}", **headers})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except HTTPError as err:
        with err:
            return err.code, dict(err.headers), err.read()


def test_parameters_types_and_command(client: Any) -> None:
    rows = client.query("SELECT n FROM spans WHERE name = {v:String}", parameters={"v": TRICKY}).result_rows
    assert rows == [(2,)]
    assert client.command("SELECT count() FROM spans") == 3  # beta's row is not alpha's to see
    rows = client.query("SELECT name, n, ts, attrs, tags, kind FROM spans WHERE n = {n:UInt64}",
                        parameters={"n": 1}).result_rows
    assert rows == [("plain", 1, TS, {"k": "v"}, ["a", "b"], "llm")]
    long_value = "x" * 5000  # long parameters travel as multipart/form-data
    assert client.query("SELECT length({v:String})", parameters={"v": long_value}).result_rows == [(5000,)]


REFUSED = [
    "INSERT INTO spans (project, n) VALUES ('alpha', 9)",
    "CREATE TABLE tracetape.other (x UInt8) ENGINE = Memory",
    "DROP TABLE spans",
    "ALTER TABLE spans DELETE WHERE 1",
    "TRUNCATE TABLE spans",
    "SET max_result_bytes = 0",
    "SET readonly = 0",
    "SELECT count() FROM spans SETTINGS readonly = 0",
    "SYSTEM DROP MARK CACHE",
    "KILL QUERY WHERE 1",
    "SELECT 1; INSERT INTO spans (project, n) VALUES ('alpha', 9)",
    "SELECT length(file('/etc/hostname'))",
]


def test_writes_ddl_and_settings_are_refused(client: Any, store: tuple[Path, Any]) -> None:
    accepted = []
    for statement in REFUSED:
        try:
            client.command(statement)
        except DatabaseError:
            continue
        accepted.append(statement)
    assert accepted == []
    assert client.command("SELECT count() FROM spans") == 3
    assert store[1].query("SELECT count(), sum(n) FROM tracetape.spans", "CSV").bytes() == b"4,10\n"


def test_engine_guards_are_fixed(client: Any) -> None:
    """Runaway queries time out, and chDB's Python() table function (not covered by readonly) is off."""
    assert client.command("SELECT getSetting('max_execution_time')") > 0
    with pytest.raises(DatabaseError, match="FUNCTION_NOT_ALLOWED"):  # PYTHON: the gate's names are case-sensitive
        client.command("SELECT * FROM PYTHON(TRICKY)")


def test_into_outfile_writes_nothing(client: Any, tmp_path: Path) -> None:
    target = tmp_path / "leak.tsv"
    with pytest.raises(DatabaseError):
        client.command(f"SELECT * FROM spans INTO OUTFILE '{target}'")
    assert not target.exists()


def test_authentication(server: SqlHttpServer) -> None:
    for auth in ({"username": "reader"}, {"username": "reader", "password": "wrong"}):
        with pytest.raises(DatabaseError):
            connect(server, **auth).close()
    bearer = connect(server, access_token=TOKEN)
    try:
        assert bearer.command("SELECT 1") == 1
    finally:
        bearer.close()
    assert fetch(server, "/?query=SELECT%202", Authorization="", **{"X-ClickHouse-User": "reader",
                                                                      "X-ClickHouse-Key": TOKEN})[2] == b"2\n"
    assert fetch(server, f"/?query=SELECT%203&user=reader&password={TOKEN}", Authorization="")[2] == b"3\n"
    status, headers, body = fetch(server, "/?query=SELECT%201", Authorization="Bearer wrong")
    assert (status, headers["X-ClickHouse-Exception-Code"]) == (403, "516")
    assert b"AUTHENTICATION_FAILED" in body and b"wrong" not in body


def test_plain_http(server: SqlHttpServer) -> None:
    assert fetch(server, "/ping", Authorization="")[::2] == (200, b"Ok.\n")
    status, headers, body = fetch(server, "/?query=SELECT%201")
    assert (status, body, headers["X-ClickHouse-Format"]) == (200, b"1\n", "TabSeparated")
    assert headers["X-ClickHouse-Timezone"] == "UTC" and "read_rows" in headers["X-ClickHouse-Summary"]
    # URL query, then body, joined as ClickHouse does; the body gzip-compressed.
    body = fetch(server, "/?query=SELECT%20n%20FROM&database=tracetape&default_format=JSONEachRow&param_n=1",
                 gzip.compress(b"spans WHERE n = {n:UInt64}"), **{"Content-Encoding": "gzip"})
    assert body[::2] == (200, b'{"n":1}\n')
    status, headers, body = fetch(server, "/?query=SELEC%201")
    # ClickHouse answers a syntax error with 400 (exceptionCodeToHTTPStatus), its code in a header.
    assert (status, headers["X-ClickHouse-Exception-Code"]) == (400, "62")
    assert body.startswith(b"Code: 62. DB::Exception: Syntax error") and b"(version " in body


def test_parameter_in_url_and_oversized_body(server: SqlHttpServer) -> None:
    assert fetch(server, "/?param_n=3&database=tracetape", b"SELECT name FROM spans WHERE n = {n:UInt64}")[2] \
        == b"third\n"
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:  # the declared length alone is refused, before any of the body is read
        conn.putrequest("POST", "/")
        conn.putheader("Content-Length", str(16 * 1024 * 1024 + 1))
        conn.endheaders(b"SELECT 1")
        with conn.getresponse() as response:
            assert response.status == 413 and b"QUERY_IS_TOO_LARGE" in response.read()
    finally:
        conn.close()


def test_concurrent_clients(server: SqlHttpServer) -> None:
    def worker(i: int) -> list[int]:
        cli = connect(server)
        try:
            return [cli.command("SELECT {a:UInt64} * 1000 + {b:UInt64}", parameters={"a": i, "b": j})
                    for j in range(20)]
        finally:
            cli.close()

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(worker, range(8), timeout=120))
    assert results == [[i * 1000 + j for j in range(20)] for i in range(8)]


def test_bad_query_keeps_the_server_usable(client: Any) -> None:
    for _ in range(5):  # more failures than pooled connections: none may leak
        with pytest.raises(DatabaseError, match="UNKNOWN_IDENTIFIER"):
            client.query("SELECT no_such_column FROM spans")
    assert client.command("SELECT count() FROM spans") == 3


def test_stop_releases_the_store(store: tuple[Path, Any], tmp_path: Path) -> None:
    path, writer = store
    srv = SqlHttpServer(str(path))  # no tokens: authentication disabled
    srv.start()
    port = srv.port
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/?query=SELECT%20count()%20FROM%20spans",
                                timeout=10) as response:
        assert response.read() == b"4\n"
    srv.stop()
    srv.stop()  # idempotent
    with pytest.raises(URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=5).close()
    writer.close()
    # chDB switches directories only when no connection to the old one is left open.
    other = chdb.connect(str(tmp_path / "other"))
    try:
        assert other.query("SELECT 42", "CSV").bytes() == b"42\n"
    finally:
        other.close()
