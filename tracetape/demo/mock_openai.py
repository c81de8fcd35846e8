"""A local, deterministic stand-in for an OpenAI-compatible HTTP API.

tracetape's demo and tests need "the outside world" (an LLM provider) that is
real enough for the unmodified ``openai`` SDK to talk to over a socket, yet
reproducible byte for byte so recordings and replays can be compared. Nothing
here reads the clock or randomness: ids, timestamps and token counts derive
from request order and content.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import sys
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

__all__ = ["MockOpenAI", "RecordedRequest", "weather_script"]

Script = Callable[[dict], dict]

CHAT_PATH = "/v1/chat/completions"
MAX_BODY_BYTES = 32 * 1024 * 1024
CREATED = 1_700_000_000  # fixed so responses are identical across runs
_ARG_FRAGMENT = 8  # characters of tool-call arguments per stream delta, like token-sized pieces
_CITY = re.compile(r"\bin\s+([^\W\d_][\w .'-]*)", re.IGNORECASE)


@dataclass(frozen=True)
class RecordedRequest:
    """What the provider actually saw, so tests can assert on the wire, not on the SDK."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    json: Any


def _text(content: Any) -> str:
    """Message content may be a string or a list of content parts; the script only needs text."""
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return content if isinstance(content, str) else ""


def weather_script(request: dict) -> dict:
    """The default scripted model: one tool call for a weather question, then an answer quoting the tool."""
    messages = request.get("messages") or []
    users = [m for m in messages if m.get("role") == "user"]
    question = _text(users[-1].get("content")) if users else ""
    match = _CITY.search(question)
    city = match.group(1).rstrip(" .'-") if match else "Paris"
    results = []
    for message in reversed(messages):
        if message.get("role") != "tool":
            break
        results.insert(0, _text(message.get("content")))
    if results:
        return {"content": f"The weather in {city}: {'; '.join(results)}", "tool_calls": []}
    if messages and messages[-1].get("role") == "user" and "weather" in question.lower():
        return {"content": None, "tool_calls": [{"name": "get_weather", "arguments": {"city": city}}]}
    return {"content": "I can only help with the weather.", "tool_calls": []}


def _error(message: str, type_: str, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


def _tokens(data: str) -> int:
    """Roughly four bytes per token: stable across runs and plausible in size."""
    return max(1, (len(data.encode()) + 3) // 4)


class MockOpenAI:
    """Serve scripted Chat Completions on a local port until stopped.

    ``script`` maps a request body to a decision ``{"content": str | None,
    "tool_calls": [{"name": str, "arguments": dict | str}]}``; the server does the
    wire format, so scripts stay short and readable.
    """

    def __init__(self, script: Script | None = None, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.script: Script = script or weather_script
        self.requests: list[RecordedRequest] = []
        self._address = (host, port)
        self._lock = threading.Lock()
        self._counters: dict[str, int] = {}
        self._server: _Server | None = None

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("MockOpenAI is not running; call start() first")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    @property
    def call_count(self) -> int:
        """Every POST to a model endpoint counts, failed or not: replay needs "zero calls", not "zero successes"."""
        with self._lock:
            return sum(1 for r in self.requests if r.method == "POST" and r.path.split("?")[0] == CHAT_PATH)

    def start(self) -> MockOpenAI:
        if self._server is not None:
            raise RuntimeError("MockOpenAI is already running")
        self._server = _Server(self._address, self)
        # A short poll interval keeps stop() from stalling every test teardown by half a second.
        threading.Thread(target=self._server.serve_forever, args=(0.05,), name="mock-openai", daemon=True).start()
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

    def __enter__(self) -> MockOpenAI:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _next(self, kind: str) -> int:
        with self._lock:
            self._counters[kind] = self._counters.get(kind, 0) + 1
            return self._counters[kind]

    def _completion(self, request: dict, decision: dict) -> dict:
        # String arguments pass through untouched, so a script can emit malformed JSON on purpose.
        tool_calls = [
            {"id": f"call_{self._next('call')}", "type": "function", "function": {
                "name": call["name"],
                "arguments": a if isinstance(a := call.get("arguments", {}), str) else json.dumps(a)}}
            for call in decision.get("tool_calls") or []
        ]
        message: dict[str, Any] = {"role": "assistant", "content": decision.get("content"), "refusal": None}
        if tool_calls:
            message["tool_calls"] = tool_calls
        reply = (message["content"] or "") + "".join(c["function"]["arguments"] for c in tool_calls)
        prompt, completion = _tokens(json.dumps(request.get("messages", []))), _tokens(reply)
        return {
            "id": f"chatcmpl-{self._next('chatcmpl')}",
            "object": "chat.completion",
            "created": CREATED,
            "model": request.get("model", "mock-model"),
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": "tool_calls" if tool_calls else "stop"}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
        }


def _chunks(completion: dict, include_usage: bool) -> list[dict]:
    """Re-cut a finished completion into the deltas a real streaming provider would send."""
    choice = completion["choices"][0]
    message = choice["message"]
    deltas: list[dict] = [{"role": "assistant", "content": "", "refusal": None}]
    deltas += [{"content": word} for word in re.findall(r"\S+\s*|\s+", message["content"] or "")]
    for index, call in enumerate(message.get("tool_calls", [])):
        function = call["function"]
        deltas.append({"tool_calls": [{"index": index, "id": call["id"], "type": "function",
                                       "function": {"name": function["name"], "arguments": ""}}]})
        args = function["arguments"]
        deltas += [{"tool_calls": [{"index": index, "function": {"arguments": args[i:i + _ARG_FRAGMENT]}}]}
                   for i in range(0, len(args), _ARG_FRAGMENT)]
    head = {k: completion[k] for k in ("id", "created", "model")} | {"object": "chat.completion.chunk"}
    finals = [(delta, None) for delta in deltas] + [({}, choice["finish_reason"])]
    chunks = [head | {"choices": [{"index": 0, "delta": d, "logprobs": None, "finish_reason": f}]} for d, f in finals]
    if include_usage:
        chunks.append(head | {"choices": [], "usage": completion["usage"]})
    return chunks


class _Server(ThreadingHTTPServer):
    def __init__(self, address: tuple[str, int], mock: MockOpenAI) -> None:
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
    protocol_version = "HTTP/1.1"  # keep-alive and chunked streaming, as the SDK expects from a provider
    timeout = 60  # idle keep-alive connections must not pin threads forever
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Silenced: a line per request would drown test and demo output."""

    def do_POST(self) -> None:
        """Every method lands here so that wrong paths get OpenAI's 404 body rather than a bare 501."""
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
            return self._send_json(status, _error(message, "invalid_request_error"), request_id)
        if (self.command, self.path.split("?")[0]) != ("POST", CHAT_PATH):
            error = _error(f"Invalid URL ({self.command} {self.path})", "invalid_request_error", "unknown_url")
            return self._send_json(404, error, request_id)
        if not isinstance(parsed, dict):
            error = _error("We could not parse the JSON body of your request.", "invalid_request_error", "invalid_json")
            return self._send_json(400, error, request_id)
        try:
            completion = mock._completion(parsed, mock.script(parsed))
        except Exception as exc:  # a broken script must not take the server down
            return self._send_json(500, _error(f"Mock script failed: {exc!r}", "server_error"), request_id)
        if not parsed.get("stream"):
            return self._send_json(200, completion, request_id)
        include_usage = bool((parsed.get("stream_options") or {}).get("include_usage"))
        self._send_stream(_chunks(completion, include_usage), request_id)

    do_GET = do_DELETE = do_PUT = do_PATCH = do_POST

    def _send_json(self, status: int, payload: dict, request_id: str) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-request-id", request_id)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def _send_stream(self, chunks: list[dict], request_id: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("x-request-id", request_id)
        self.end_headers()
        for event in [f"data: {json.dumps(c)}\n\n".encode() for c in chunks] + [b"data: [DONE]\n\n"]:
            self.wfile.write(b"%X\r\n%s\r\n" % (len(event), event))
        self.wfile.write(b"0\r\n\r\n")
