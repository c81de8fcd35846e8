"""A travel-briefing agent that crosses every kind of boundary replay serves, for the end-to-end replay test.

In one run: it reads its brief from a file, fetches advisories from an HTTP API, asks the model (the real
openai SDK, streaming) about each city — the model calls the ``get_weather`` tool — gets a second opinion
from an MCP server's ``get_weather`` tool, stamps the briefing with the time, a uuid and a randomly chosen
sign-off, and writes it to a file. Run it with ``--root DIR`` (its working directory: the brief is read
from there and the briefing written there) and ``--api URL``; the model is at ``OPENAI_BASE_URL``.

Under ``tracetape replay`` the same code runs with every one of those calls served from the recording.
Prints one JSON line: the run id, the answers, and the briefing it wrote.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
import uuid
from pathlib import Path

import determinism_setup
import httpx
from mcp import Client, StdioServerParameters

import tracetape
from tracetape.demo.agent import TOOLS  # the get_weather schema the mock model answers to
from tracetape.schemas import config

FORECASTS = {"tokyo": {"sky": "cloudy", "high_c": 19}, "paris": {"sky": "light rain", "high_c": 14}}
SIGN_OFFS = ("Safe travels!", "Bon voyage!", "Enjoy the trip!", "Have a good journey!")


@tracetape.tool
def get_weather(city: str) -> dict:
    return {"city": city, **FORECASTS.get(city.lower(), {"sky": "unknown"})}


def streamed_chat(client, messages: list[dict]) -> tuple[str, list[dict]]:
    """One streamed completion: the text, and the tool calls assembled from their deltas."""
    stream = client.chat.completions.create(model="gpt-4o", messages=messages, tools=TOOLS, temperature=0,
                                            stream=True)
    text: list[str] = []
    calls: dict[int, dict] = {}
    for chunk in stream:
        if not chunk.choices:
            continue
        delta = chunk.choices[0].delta
        text.append(delta.content or "")
        for piece in delta.tool_calls or ():
            call = calls.setdefault(piece.index, {"id": "", "name": "", "arguments": ""})
            call["id"] = piece.id or call["id"]
            call["name"] = piece.function.name or call["name"]
            call["arguments"] += piece.function.arguments or ""
    return "".join(text), [calls[i] for i in sorted(calls)]


def ask(client, city: str) -> str:
    messages: list[dict] = [{"role": "system", "content": "Answer weather questions with the get_weather tool."},
                            {"role": "user", "content": f"What's the weather in {city}?"}]
    for _ in range(4):
        text, calls = streamed_chat(client, messages)
        if not calls:
            return text
        messages.append({"role": "assistant", "content": None, "tool_calls": [
            {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
            for c in calls]})
        for call in calls:
            result = get_weather(**json.loads(call["arguments"]))
            messages.append({"role": "tool", "tool_call_id": call["id"], "content": json.dumps(result)})
    return "(no answer)"


async def brief(api: str, mcp: Client) -> tuple[list[str], str]:
    import openai

    cities = [c.strip() for c in Path("brief.txt").read_text(encoding="utf-8").split(",") if c.strip()]
    advisories = httpx.get(f"{api}/advisories", params={"cities": ",".join(cities)}).json()
    answers, lines = [], []
    with openai.OpenAI(base_url=os.environ["OPENAI_BASE_URL"], max_retries=0) as client:
        for city in cities:
            answer = ask(client, city)
            second = await mcp.call_tool("get_weather", {"city": city})
            opinion = json.loads(second.content[0].text)
            answers.append(answer)
            lines.append(f"- {answer} (MCP: {opinion['conditions']}, {opinion['temperature_c']} C; "
                         f"advisory: {advisories[city]})")
    briefing = "\n".join([f"Briefing {uuid.uuid4()} at {time.time():.6f}", *lines, random.choice(SIGN_OFFS)])
    Path("briefing.md").write_text(briefing + "\n", encoding="utf-8")
    return answers, briefing


async def main_async(api: str) -> dict:
    # The MCP server is another program, recording itself: it is not the process being replayed.
    replaying = (config.REPLAY, config.REPLAY_MODE, config.REPLAY_FORK_AT, config.REPLAY_REPORT, config.REPLAY_ALLOW)
    env = {k: v for k, v in os.environ.items() if k not in {s.env for s in replaying}}
    server = StdioServerParameters(command=sys.executable, args=["-m", "tracetape.demo.mock_mcp_server"], env=env)
    async with Client(server) as mcp:  # connected before the run, as agents that connect once do
        with tracetape.run(agent="travel-briefing", tags=["replay-test"]) as run:
            answers, briefing = await brief(api, mcp)
    return {"run_id": run.run_id, "answers": answers, "briefing": briefing}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", required=True, help="working directory: brief.txt in, briefing.md out")
    parser.add_argument("--api", required=True, help="base URL of the advisories API")
    args = parser.parse_args()
    os.chdir(args.root)  # the file capture records files under the working directory
    determinism_setup.instrument()  # tracetape.instrument() (which starts a replay if asked) + files/clock/random
    outcome = asyncio.run(main_async(args.api))
    determinism_setup.finish()
    print(json.dumps(outcome), flush=True)


if __name__ == "__main__":
    main()
