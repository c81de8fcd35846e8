"""A multi-step agent for replay tests: per city, a tool-calling loop on the real openai SDK
(model call → get_weather tool → model call), then a report tool, then the answers written to a file.

Knobs the tests turn: ``--ask-k K`` rewords the question of the K-th city (a changed prompt),
``REPLAY_AGENT_FORECASTS`` points get_weather at a JSON file of forecasts (a changed tool result),
``--fail`` makes the report tool raise (a builtin or the agent's own exception type).
Prints one JSON line: run id, answers, and where the run is linked to (replays and forks).
"""

from __future__ import annotations

import argparse
import json
import os

import tracetape
from tracetape.demo.agent import TOOLS  # the get_weather schema the mock model answers to

DEFAULT_FORECASTS = {"tokyo": {"sky": "cloudy", "high_c": 19}, "paris": {"sky": "light rain", "high_c": 14},
                     "lisbon": {"sky": "sunny", "high_c": 24}}


@tracetape.tool
def get_weather(city: str) -> dict:
    path = os.environ.get("REPLAY_AGENT_FORECASTS")
    forecasts = DEFAULT_FORECASTS
    if path:
        with open(path, encoding="utf-8") as fh:
            forecasts = json.load(fh)
    return {"city": city, **forecasts.get(city.lower(), {"sky": "unknown"})}


class ReportError(Exception):
    """An error type of the agent's own: replay cannot rebuild it, so it comes back as RecordedToolError."""


@tracetape.tool
def format_report(answers: list, fail: str = "") -> str:
    if fail == "builtin":
        raise ValueError("nothing to report")
    if fail == "custom":
        raise ReportError("report service unavailable")
    return "\n".join(f"- {answer}" for answer in answers)


def ask(client, question: str) -> str:
    messages: list[dict] = [{"role": "system", "content": "Answer weather questions with the get_weather tool."},
                            {"role": "user", "content": question}]
    for _ in range(4):
        reply = client.chat.completions.create(model="gpt-4o", messages=messages, tools=TOOLS, temperature=0)
        message = reply.choices[0].message
        if not message.tool_calls:
            return message.content or ""
        messages.append(message.model_dump(exclude_none=True))
        for call in message.tool_calls:
            result = get_weather(**json.loads(call.function.arguments))
            messages.append({"role": "tool", "tool_call_id": call.id, "content": json.dumps(result)})
    return "(no answer)"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cities", default="Tokyo,Paris")
    parser.add_argument("--ask-k", type=int, default=0, help="reword the question of the k-th city (1-based)")
    parser.add_argument("--out", required=True, help="file the report is written to")
    parser.add_argument("--fail", default="", help="comma-separated: make the report tool raise a builtin "
                                                   "exception and/or the agent's own (builtin,custom)")
    args = parser.parse_args()

    tracetape.instrument()
    from tracetape.replay.commands import activate_from_env

    activate_from_env()  # no-op unless TRACETAPE_REPLAY is set; instrument() does it once wired in _setup.py

    import openai

    answers = []
    with openai.OpenAI(base_url=os.environ["OPENAI_BASE_URL"], max_retries=0) as client, \
            tracetape.run(agent="replay-agent", tags=["replay-test"]) as run:
        for k, city in enumerate(filter(None, args.cities.split(",")), start=1):
            question = f"Tell me the weather in {city}, please." if k == args.ask_k else \
                f"What's the weather in {city}?"
            answers.append(ask(client, question))
        outcomes = []
        for fail in args.fail.split(",") if args.fail else [""]:
            try:
                outcomes.append(format_report(answers, fail=fail))
            except Exception as exc:  # the agent survives a failing tool; the test compares what it wrote
                outcomes.append(f"{type(exc).__name__}: {exc}")
        report = "\n".join(outcomes)
    with open(args.out, "w", encoding="utf-8") as fh:
        fh.write(report)
    print(json.dumps({"run_id": run.run_id, "answers": answers, "parent_run_id": run.parent_run_id,
                      "fork_step": run.fork_step}), flush=True)


if __name__ == "__main__":
    main()
