"""The HTTP listener under OTLP/HTTP and the SQL endpoint: NODELAY sockets, logs without secrets."""

from __future__ import annotations

import logging
import socket
from typing import Iterator

import pytest
from collector_helpers import request

from tracetape.collector.http_listener import Handler, HttpListener


class _Echo(Handler):
    """Answers with the accepted socket's TCP_NODELAY flag, or a 400 naming the path."""

    def do_GET(self) -> None:  # noqa: N802
        if self.path.startswith("/refuse"):
            return self.send_error(400, "refused")
        nodelay = self.connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        self.reply(200, str(nodelay).encode(), {"Content-Type": "text/plain"})


@pytest.fixture
def listener() -> Iterator[HttpListener]:
    server = HttpListener("echo", "127.0.0.1", 0, _Echo, owner=None)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_accepted_connections_do_not_wait_for_delayed_acks(listener: HttpListener) -> None:
    resp = request("GET", f"http://127.0.0.1:{listener.port}/")
    assert resp.status == 200 and int(resp.body) != 0
    assert resp.headers["content-length"] == str(len(resp.body))


def test_logs_never_carry_the_query_string(listener: HttpListener, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="tracetape.collector.http_listener")
    assert request("GET", f"http://127.0.0.1:{listener.port}/?password=s3cret-token").status == 200
    assert request("GET", f"http://127.0.0.1:{listener.port}/refuse?password=s3cret-token").status == 400
    with socket.create_connection(("127.0.0.1", listener.port), timeout=10) as sock:
        sock.sendall(b"GET /?password=s3cret-token HTTP/1.1 extra\r\n\r\n")  # malformed: logged as an error
        assert b"400" in sock.recv(4096)
    logged = [record.getMessage() for record in caplog.records]
    assert any("GET / -> 200" in line for line in logged) and any("-> 400" in line for line in logged)
    assert len(logged) >= 4 and not any("s3cret" in line for line in logged)
