"""The threaded HTTP listener under both of the collector's HTTP endpoints.

OTLP/HTTP (with health and metrics) and the read-only SQL endpoint need the
same few things from :mod:`http.server`, each easy to get subtly wrong, so
they are done once here:

- one daemon thread per connection, so a silent keep-alive client can never
  hold up shutdown;
- ``TCP_NODELAY`` on every accepted socket: a response leaves as two writes
  (headers, then body), and with Nagle's algorithm the second waits for the
  client's delayed ACK, which cost every keep-alive request ~40 ms;
- connection errors (resets, TLS handshake failures, timeouts) logged at
  debug level, not printed to stderr as tracebacks: they are the client's
  business, not an incident;
- access logs that never echo the request line or other strings, which can
  carry ``password=TOKEN``;
- TLS from the collector's one certificate, with the handshake in the
  connection's thread (see :meth:`.tls.ServerTls.wrap`).
"""

from __future__ import annotations

import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from .tls import ServerTls

__all__ = ["HttpListener", "Handler"]

_log = logging.getLogger(__name__)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    name = "http"
    owner: Any = None  # the endpoint object the handlers serve (receiver or SQL gateway)

    def handle_error(self, request: Any, client_address: Any) -> None:
        _log.debug("%s: connection error from %s", self.name, client_address[0], exc_info=True)


class Handler(BaseHTTPRequestHandler):
    """Base of the endpoints' request handlers: HTTP/1.1 keep-alive, NODELAY, quiet logs, one reply path."""

    protocol_version = "HTTP/1.1"  # keep-alive: exporters and clickhouse-connect reuse their connections
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_request(self, code: Any = "-", size: Any = "-") -> None:
        path = urlsplit(getattr(self, "path", "")).path  # unset when the request line did not parse
        _log.debug("%s: %s %s -> %s", self.server.name, self.command, path, code)

    def log_message(self, format: str, *args: Any) -> None:
        # Strings are left out: http.server passes the raw request line, query string included.
        _log.debug("%s: " + format, self.server.name, *("…" if isinstance(a, str) else a for a in args))

    def reply(self, status: int, data: bytes, headers: dict[str, str]) -> None:
        """Send one whole response; announces ``Connection: close`` when the handler decided to close."""
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)


class HttpListener:
    """Serves *handler* on ``host:port`` (port 0 picks a free one) from a background thread.

    *owner* is reachable from each request as ``self.server.owner``; *tls* serves HTTPS.
    """

    def __init__(self, name: str, host: str, port: int, handler: type[Handler], owner: Any,
                 tls: ServerTls | None = None) -> None:
        self._httpd = _Server((host, port), handler)
        self._httpd.name, self._httpd.owner = name, owner
        if tls is not None:
            tls.wrap(self._httpd)
        self._thread = threading.Thread(target=self._httpd.serve_forever, name=f"tracetape-{name}", daemon=True)

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting and close the listening socket; requests in flight finish on their own threads."""
        self._httpd.shutdown()
        self._httpd.server_close()
