"""An agent that makes one model call (the openai SDK, on httpx2) and one plain HTTP call (httpx2) in a run,
plus one HTTP call with OpenTelemetry instrumentation suppressed (as our own I/O is).

Usage: ``tools_model_agent.py URL``; the model is the mock named by ``OPENAI_BASE_URL``.
Prints one JSON line: the run id, the model's reply and the HTTP status.
"""

from __future__ import annotations

import json
import sys

import httpx2
import openai
from opentelemetry.instrumentation.utils import suppress_instrumentation

import tracetape


def main() -> None:
    tracetape.instrument()
    client = openai.OpenAI()
    with tracetape.run(agent="model-and-http") as run:
        reply = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hello?"}])
        status = httpx2.get(sys.argv[1]).status_code
        with suppress_instrumentation():
            httpx2.get(sys.argv[1] + "?quiet=1")
    client.close()
    tracetape.flush()
    print(json.dumps({"run_id": run.run_id, "reply": reply.choices[0].message.content, "status": status}))


if __name__ == "__main__":
    main()
