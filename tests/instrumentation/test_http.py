"""HTTP exchanges of httpx2, httpx and requests: recorded byte for byte, secrets redacted, replayed offline."""

from __future__ import annotations

import gzip
import json
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator

import pytest
from tools_support import AGENTS, agent_env, load

from tracetape.instrumentation.http import redact_url
from tracetape.schemas.events import EventKind

AGENT = AGENTS / "tools_http_agent.py"
GZIPPED = gzip.compress(b'{"zipped": true, "items": [1, 2, 3]}', mtime=0)
CHUNKS = (b"alpha,", b"beta,", b"gamma")


class _Api(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    received: list[tuple[str, bytes]] = []

    def log_message(self, *args: object) -> None:
        return None

    def _send(self, status: int, body: bytes, *headers: tuple[str, str]) -> None:
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if self.path == "/redirect":
            self._send(302, b"", ("Location", "/items?from=redirect"))
        elif self.path == "/gzip":
            self._send(200, GZIPPED, ("Content-Encoding", "gzip"), ("Content-Type", "application/json"))
        elif self.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Set-Cookie", "session=s3cr3t-cookie")
            self.end_headers()
            for chunk in CHUNKS:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.write(b"0\r\n\r\n")
        elif self.path == "/missing":
            self._send(404, b"no such thing")
        else:
            path = self.path.split("?", 1)[0]
            self._send(200, json.dumps({"path": path}).encode(), ("Content-Type", "application/json"))

    def do_POST(self) -> None:  # noqa: N802
        if self.headers.get("Transfer-Encoding") == "chunked":
            body = b""
            while size := int(self.rfile.readline().strip(), 16):
                body += self.rfile.read(size)
                self.rfile.readline()
            self.rfile.readline()
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.received.append((self.path, body))
        self._send(201, json.dumps({"echo": body.decode()}).encode())


class LocalApi:
    """The API on 127.0.0.1, until stopped."""

    def __init__(self) -> None:
        _Api.received = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Api)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=10)


@pytest.fixture
def api() -> Iterator[LocalApi]:
    server = LocalApi()
    yield server
    server.stop()


@pytest.fixture
def refused() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/down"


def test_exchanges_are_recorded_exactly_and_replay_without_the_server(collector, agent, api, refused, tmp_path):
    env = agent_env(tmp_path)
    recorded = agent(AGENT, collector, api.url, refused, extra_env=env)
    trajectory = load(recorded["run_id"], collector)
    http = trajectory.filter(EventKind.HTTP)
    # One event per request on the wire: the redirect is two hops.
    assert len(http) == len(recorded["results"]) + 1
    assert [s.seq for s in trajectory] == sorted(s.seq for s in trajectory)

    by_name = {}
    for step in http:
        by_name.setdefault(step.name.split(" ", 1)[0] + " " + step.name.rsplit("/", 1)[-1], []).append(step)

    # Request bodies exactly as the server received them, both libraries, including a streamed upload.
    posted = [s for s in http if s.name.startswith("POST")]
    assert [s.blob("request_body") for s in posted] == [body for _, body in _Api.received]
    assert json.loads(posted[0].blob("request"))["body"] == '{"city":"Paris","n":1}'

    # Response bodies as they came off the connection: still gzip-compressed, chunks joined.
    gzip_steps = by_name["GET gzip"]
    assert [s.blob("response") for s in gzip_steps] == [GZIPPED, GZIPPED]
    assert ["Content-Encoding", "gzip"] in json.loads(gzip_steps[0].attributes["tracetape.http.response.headers"])
    assert all(s.blob("response") == b"".join(CHUNKS) for s in by_name["GET chunked"])

    # Status, errors.
    missing = by_name["GET missing"][0]
    assert missing.attributes["http.response.status_code"] == "404" and missing.failed
    assert missing.attributes["error.type"] == "404"
    down = by_name["GET down"]
    assert sorted(s.attributes["error.type"] for s in down) == ["ConnectError", "ConnectionError"]

    # Secrets never stored: not in attributes, not in request payloads.
    stored = json.dumps([[s.attributes, s.blob("request").decode()] for s in http])
    for secret in ("SECRET-KEY-1", "tok-xyz", "abc-secret", "s3cr3t-cookie"):
        assert secret not in stored, secret
    items = by_name["GET items"][0]
    assert json.loads(items.blob("request"))["headers"]["authorization"] == "[REDACTED]"
    assert items.attributes["url.full"].endswith("/items?api_key=[REDACTED]&q=1")

    # Replay: the API is gone; every exchange is served from the recording, results identical.
    api.stop()
    replayed = agent(AGENT, collector, api.url, refused, "--replay", recorded["run_id"], "--store", collector.sql,
                     extra_env=env)
    assert replayed["results"] == recorded["results"]
    assert replayed["served"] == len(http) + 1  # and the environment the run started in


def test_redact_url_keeps_everything_but_secrets():
    assert redact_url("https://user:pw@h:1/p?a=1&access_token=x&Sig=y#f") == \
        "https://user:[REDACTED]@h:1/p?a=1&access_token=[REDACTED]&Sig=[REDACTED]#f"
    assert redact_url("http://h/p?q=plain%20text") == "http://h/p?q=plain%20text"


def test_http_inside_a_model_call_or_under_suppression_is_not_an_event(collector, agent, api, mock_openai, tmp_path):
    env = agent_env(tmp_path, OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="")  # the openai instrumentor on, too
    result = agent(AGENTS / "tools_model_agent.py", collector, f"{api.url}/ping", mock=mock_openai, extra_env=env)
    trajectory = load(result["run_id"], collector)
    assert [s.kind for s in trajectory] == [EventKind.RUN, EventKind.ENVIRONMENT, EventKind.MODEL_CALL, EventKind.HTTP]
    http = trajectory.filter(EventKind.HTTP)[0]
    assert http.name.endswith("/ping") and "quiet" not in http.attributes["url.full"] and result["status"] == 200


def test_libraries_are_patched_when_imported_and_restored_on_uninstrument(tmp_path):
    # In a fresh process: instrument first, import after (the patch waits for the import), then undo.
    script = """
import sys
from tracetape.instrumentation.http import HTTPInstrumentor
instrumentor = HTTPInstrumentor()
instrumentor.instrument()
assert "requests" not in sys.modules and "httpx" not in sys.modules
import httpx, requests
def wrapped():
    return [hasattr(f, "__wrapped__") for f in (requests.adapters.HTTPAdapter.send, httpx.Client._transport_for_url,
                                                 httpx.AsyncClient._transport_for_url)]
patched = wrapped()
instrumentor.uninstrument()
restored = wrapped()
instrumentor.instrument()
print(patched, restored, wrapped())
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[True, True, True] [False, False, False] [True, True, True]"
