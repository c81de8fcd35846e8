"""The HTTP side of tracetape's local provider mocks (OpenAI, Anthropic).

A mock must look like a provider to the unmodified SDK over a real socket:
keep-alive, chunked Server-Sent Events, the provider's error bodies, refusal
of unbounded bodies. Everything here is shared; each provider module only
turns a parsed request into a :class:`Reply` in its own wire format. Nothing
reads the clock or randomness, so two runs answer byte for byte alike.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import sys
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Sequence

__all__ = ["MockServer", "RecordedRequest", "Reply", "Script", "sse_event", "text_of", "tokens", "words",
           "MAX_BODY_BYTES"]

Script = Callable[[dict], dict]
MAX_BODY_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True)
class RecordedRequest:
    """What the provider actually saw, so tests can assert on the wire, not on the SDK."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    json: Any


@dataclass(frozen=True)
class Reply:
    """One answer: a JSON body, or (status 200) a list of framed SSE events.

    ``abort_after`` cuts a stream after that many events without the final
    chunk, the way a dropped connection looks to the client.
    """

    status: int = 200
    payload: Any = None
    events: Sequence[bytes] = ()
    abort_after: int | None = None

    @property
    def streaming(self) -> bool:
        return bool(self.events)


def sse_event(data: Any, event: str | None = None) -> bytes:
    """One Server-Sent Event, framed as providers send it."""
    body = data if isinstance(data, str) else json.dumps(data)
    return (f"event: {event}\ndata: {body}\n\n" if event else f"data: {body}\n\n").encode()


def text_of(content: Any) -> str:
    """Message content may be a string or a list of content parts; scripts only need the text."""
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return content if isinstance(content, str) else ""


def tokens(data: str) -> int:
    """Roughly four bytes per token: stable across runs and plausible in size."""
    return max(1, (len(data.encode()) + 3) // 4)


def words(text: str) -> list[str]:
    """Token-sized pieces of *text* (a word with its trailing space) for stream deltas."""
    return re.findall(r"\S+\s*|\s+", text)


class MockServer(ABC):
    """A provider mock on a local port: records every request, answers through :meth:`reply`.

    ``stream_delay`` spaces stream events in time (seconds), so tests can see
    a stream arrive piece by piece; the bytes do not depend on it.
    """

    request_id_header = "x-request-id"
    model_paths: tuple[str, ...] = ()  # path suffixes that count as model calls
    url_suffix = ""  # appended to http://host:port to form the SDK's base_url

    def __init__(self, script: Script, *, host: str = "127.0.0.1", port: int = 0, stream_delay: float = 0.0) -> None:
        self.script: Script = script
        self.stream_delay = stream_delay
        self.requests: list[RecordedRequest] = []
        self._address = (host, port)
        self._lock = threading.Lock()
        self._counters: dict[str, int] = {}
        self._server: _Server | None = None

    # -- provider hooks -----------------------------------------------------

    @abstractmethod
    def reply(self, method: str, path: str, request: Any) -> Reply:
        """The answer to a request whose body parsed as *request* (``None`` if it did not)."""

    @abstractmethod
    def error(self, status: int, message: str, type_: str, code: str | None = None) -> Reply:
        """An error reply in the provider's own error shape."""

    # -- lifecycle ----------------------------------------------------------

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not running; call start() first")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}{self.url_suffix}"

    @property
    def call_count(self) -> int:
        """Every POST to a model endpoint counts, failed or not: replay needs "zero calls", not "zero successes"."""
        with self._lock:
            return sum(1 for r in self.requests if r.method == "POST" and self.is_model_path(r.path))

    def is_model_path(self, path: str) -> bool:
        return path.split("?")[0].endswith(self.model_paths)

    def start(self) -> MockServer:
        if self._server is not None:
            raise RuntimeError(f"{type(self).__name__} is already running")
        self._server = _Server(self._address, self)
        # A short poll interval keeps stop() from stalling every test teardown by half a second.
        threading.Thread(target=self._server.serve_forever, args=(0.05,), name=f"mock-{type(self).__name__}",
                         daemon=True).start()
        return self

    def stop(self) -> None:
        """Also cut idle keep-alive connections, or pooled clients could keep talking to a "stopped" provider."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()  # returns once serve_forever has exited
        with self._lock:
            connections = list(server.connections)
        for connection in connections:
            with contextlib.suppress(OSError):  # its handler may have closed it meanwhile
                connection.shutdown(socket.SHUT_RDWR)
        server.server_close()

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _next(self, kind: str) -> int:
        with self._lock:
            self._counters[kind] = self._counters.get(kind, 0) + 1
            return self._counters[kind]

    def _answer(self, method: str, path: str, request: Any) -> Reply:
        try:
            return self.reply(method, path, request)
        except Exception as exc:  # a broken script must not take the server down
            return self.error(500, f"Mock script failed: {exc!r}", "server_error")


class _Server(ThreadingHTTPServer):
    def __init__(self, address: tuple[str, int], mock: MockServer) -> None:
        super().__init__(address, _Handler)
        self.mock = mock
        self.connections: set[socket.socket] = set()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.mock._lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.mock._lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients hanging up mid-stream is routine for an SSE server; anything else deserves a traceback."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive and chunked streaming, as the SDKs expect from a provider
    timeout = 60  # idle keep-alive connections must not pin threads forever
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Stream events go out as written, as from a provider: without this, Nagle's algorithm meets the
        # client's delayed ACK and every small event write can stall for 40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        """Silenced: a line per request would drown test and demo output."""

    def do_POST(self) -> None:
        """Every method lands here so that wrong paths get the provider's 404 body rather than a bare 501."""
        mock = self.server.mock
        request_id = f"req_{mock._next('req')}"
        headers = {k.lower(): v for k, v in self.headers.items()}
        declared = headers.get("content-length", "0")
        length = int(declared) if declared.isdigit() else -1
        # Unbounded, chunked or bogus bodies are refused unread; the connection then cannot be reused.
        refused = not 0 <= length <= MAX_BODY_BYTES or "transfer-encoding" in headers
        body = b"" if refused else self.rfile.read(length)
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        with mock._lock:
            mock.requests.append(RecordedRequest(self.command, self.path, headers, body, parsed))
        if refused:
            self.close_connection = True
            too_large = length > MAX_BODY_BYTES
            status, message = (413, "Request body too large") if too_large else (411, "Content-Length required")
            return self._send(mock.error(status, message, "invalid_request_error"), request_id)
        self._send(mock._answer(self.command, self.path, parsed), request_id)

    do_GET = do_DELETE = do_PUT = do_PATCH = do_POST

    def _send(self, reply: Reply, request_id: str) -> None:
        if reply.streaming:
            return self._send_stream(reply, request_id)
        data = json.dumps(reply.payload).encode()
        self.send_response(reply.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header(self.server.mock.request_id_header, request_id)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def _send_stream(self, reply: Reply, request_id: str) -> None:
        delay = self.server.mock.stream_delay
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header(self.server.mock.request_id_header, request_id)
        self.end_headers()
        for number, event in enumerate(reply.events):
            if reply.abort_after is not None and number >= reply.abort_after:
                self.close_connection = True
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if delay and number:
                time.sleep(delay)
            self.wfile.write(b"%X\r\n%s\r\n" % (len(event), event))
            if delay:
                self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
