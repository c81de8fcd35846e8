"""A weather agent handed secrets and personal data everywhere: in its prompt, a tool's result, a file it
reads, its memory and its command line. Redaction must keep every one of them out of the recording.

Usage: ``determinism_privacy.py --root DIR --api-key SECRET [--replay RUN --store URL]``
(OPENAI_BASE_URL points at a mock; the file ``DIR/service.env`` holds more secrets). With ``--replay`` the same code runs under a strict player of that
run: every call it makes is compared with the (redacted) recording.
"""

import argparse
import json
import os
import re
from pathlib import Path

import determinism_setup
import httpx2
import tracetape
from tracetape.instrumentation.memory import memory

PROMPT = ("What's the weather in Paris? My key is sk-live-0123456789abcdefSECRET, "
          "mail alice@example.com, SSN 123-45-6789.")


@tracetape.tool
def get_weather(city: str) -> dict:
    return {"city": city, "sky": "clear", "api_key": "zzz-tool-secret-material-42"}


def hide_email(role: str, data: bytes) -> bytes:
    return re.sub(rb"[\w.+-]+@[\w-]+\.[\w.]+", b"[EMAIL]", data)


def run_agent(root: str) -> tuple[str, str, int]:
    import openai

    with openai.OpenAI(base_url=os.environ["OPENAI_BASE_URL"], max_retries=0) as client, \
            tracetape.run(agent="privacy") as run:
        config = (Path(root) / "service.env").read_text(encoding="utf-8")
        memory("credentials", {"user": "bob", "password": "hunter2-secret-pass"})
        messages = [{"role": "user", "content": PROMPT}]
        reply = client.chat.completions.create(model="gpt-4o", messages=messages, tools=[{
            "type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}])
        call = reply.choices[0].message.tool_calls[0]
        result = get_weather(**json.loads(call.function.arguments))
        messages += [reply.choices[0].message.model_dump(exclude_none=True),
                     {"role": "tool", "tool_call_id": call.id, "content": json.dumps(result)}]
        answer = client.chat.completions.create(model="gpt-4o", messages=messages).choices[0].message.content
        # A plain HTTP call of the agent's own, with personal data in a header.
        with httpx2.Client() as http:
            http.post(os.environ["OPENAI_BASE_URL"] + "/chat/completions", headers={"X-User-Email": "alice@example.com"},
                      json={"model": "gpt-4o", "messages": [{"role": "user", "content": "ping"}]}).raise_for_status()
    return run.run_id, answer, len(config.splitlines())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", required=True)
    parser.add_argument("--api-key")
    parser.add_argument("--replay")
    parser.add_argument("--store")
    args = parser.parse_args()
    determinism_setup.instrument(redact=[r"\b\d{3}-\d{2}-\d{4}\b", hide_email])
    report: dict = {}
    if args.replay:
        from tracetape import replay

        with replay.player(args.replay, store=args.store) as player:
            run_id, answer, lines = run_agent(args.root)
        report = {"divergences": [d.describe() for d in player.divergences], "served": player.served}
    else:
        run_id, answer, lines = run_agent(args.root)
    determinism_setup.finish()
    print(json.dumps({"run_id": run_id, "answer": answer, "config_lines": lines, **report}))


if __name__ == "__main__":
    main()
