"""Helpers shared by the replay tests (a module of its own: ``conftest`` is not importable by name)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tracetape import replay
from tracetape.demo.mock_openai import MockOpenAI
from tracetape.replay.tape import write_tape
from tracetape.replay.trajectory import run_info

AGENT = Path(__file__).parents[1] / "agents" / "replay_agent.py"


@dataclass
class Recording:
    grpc: str
    sql: str
    mock: MockOpenAI
    tape: Path  # the recorded run, pulled
    run_id: str = ""
    report: str = ""  # what the recorded agent wrote to its output file

    def env(self, **extra: str) -> dict[str, str]:
        """The agent's environment: recording to the collector, the model at the mock."""
        return dict(os.environ, OTEL_EXPORTER_OTLP_ENDPOINT=self.grpc, OPENAI_BASE_URL=self.mock.base_url,
                    OPENAI_API_KEY="sk-test-secret-key-123", **extra)


def record(env: dict[str, str], out: Path, *args: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, str(AGENT), "--out", str(out), *args], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


class RunBuilder:
    """Span rows and payloads of one run, as a store would return them."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.spans: list[dict] = []
        self.blobs: dict[str, bytes] = {}
        self.span("run", "invoke_agent planner", attributes={"gen_ai.agent.name": "planner",
                                                              "tracetape.run.outcome": "ok"})

    def span(self, kind: str, name: str, *, task: str = "0", request: object = None, response: object = None,
             tokens: tuple[int, int] = (0, 0), attributes: dict | None = None, status: str = "UNSET") -> None:
        seq = len(self.spans) + 1
        blobs, sizes = {}, {}
        for role, value in (("request", request), ("response", response)):
            if value is not None:
                data = json.dumps(value).encode()
                blobs[role] = hashlib.sha256(data).hexdigest()
                sizes[role] = len(data)
                self.blobs[blobs[role]] = data
        self.spans.append({
            "run_id": self.run_id, "seq": seq, "trace_id": "ab" * 16, "span_id": f"{seq:016x}",
            "parent_span_id": "" if kind == "run" else f"{1:016x}", "name": name, "kind": kind,
            "span_kind": "INTERNAL", "service_name": "test", "start_ns": seq * 1000, "end_ns": seq * 1000 + 500,
            "status_code": status, "status_message": "", "operation": "", "provider": "", "request_model": "",
            "response_model": "", "tool_name": "", "tool_call_id": "", "input_tokens": tokens[0],
            "output_tokens": tokens[1], "finish_reasons": [], "blobs": blobs, "blob_sizes": sizes,
            "attributes": {"tracetape.task": task, **(attributes or {})}, "resource": {},
        })

    def chat(self, question: str, answer: str, *, task: str = "0", call_id: str = "call_1",
             response_id: str = "chatcmpl-1", tool: str | None = None) -> None:
        message = {"role": "assistant", "content": None if tool else answer}
        if tool:
            message["tool_calls"] = [{"id": call_id, "type": "function",
                                      "function": {"name": tool, "arguments": "{}"}}]
        self.span("model_call", "chat gpt-4o", task=task, tokens=(10, 5),
                  request={"model": "gpt-4o", "messages": [{"role": "system", "content": "Be brief."},
                                                           {"role": "user", "content": question}]},
                  response={"id": response_id, "created": 1700000000 + len(self.spans),
                            "choices": [{"index": 0, "message": message}]})

    def tool(self, name: str, arguments: dict, result: object, *, task: str = "0") -> None:
        self.span("tool_call", f"execute_tool {name}", task=task, request=arguments, response=result)

    def tape(self, directory: Path) -> replay.Tape:
        path = write_tape(directory / f"{self.run_id}.tape", run_info(self.run_id, None, self.spans), self.spans,
                          self.blobs)
        return replay.Tape(path)
