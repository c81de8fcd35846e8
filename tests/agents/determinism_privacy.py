"""A weather agent handed secrets and personal data everywhere: in its prompt, a tool's result, a file it
reads, its memory and its command line. Redaction must keep every one of them out of the recording.

Usage: ``determinism_privacy.py --root DIR --api-key SECRET`` (OPENAI_BASE_URL points at a mock).
"""

import argparse
import json
import os
import re
from pathlib import Path

import determinism_setup
import tracetape
from tracetape.instrumentation import redaction
from tracetape.instrumentation.memory import memory

PROMPT = ("What's the weather in Paris? My key is sk-live-0123456789abcdefSECRET, "
          "mail alice@example.com, SSN 123-45-6789.")


@tracetape.tool
def get_weather(city: str) -> dict:
    return {"city": city, "sky": "clear", "api_key": "zzz-tool-secret-material-42"}


def hide_email(role: str, data: bytes) -> bytes:
    return re.sub(rb"[\w.+-]+@[\w-]+\.[\w.]+", b"[EMAIL]", data)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", required=True)
    parser.add_argument("--api-key")
    args = parser.parse_args()
    determinism_setup.instrument()
    redaction.configure(patterns=[r"\b\d{3}-\d{2}-\d{4}\b"], hooks=[hide_email])
    import openai

    with openai.OpenAI(base_url=os.environ["OPENAI_BASE_URL"], max_retries=0) as client, \
            tracetape.run(agent="privacy") as run:
        config = (Path(args.root) / "service.env").read_text(encoding="utf-8")
        memory("credentials", {"user": "bob", "password": "hunter2-secret-pass"})
        messages = [{"role": "user", "content": PROMPT}]
        reply = client.chat.completions.create(model="gpt-4o", messages=messages, tools=[{
            "type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}])
        call = reply.choices[0].message.tool_calls[0]
        result = get_weather(**json.loads(call.function.arguments))
        messages += [reply.choices[0].message.model_dump(exclude_none=True),
                     {"role": "tool", "tool_call_id": call.id, "content": json.dumps(result)}]
        answer = client.chat.completions.create(model="gpt-4o", messages=messages).choices[0].message.content
    determinism_setup.finish()
    print(json.dumps({"run_id": run.run_id, "answer": answer, "config_lines": len(config.splitlines())}))


if __name__ == "__main__":
    main()
