"""An agent on both model SDKs, for the end-to-end model-client tests.

One run: an OpenAI chat call with tools, a streamed chat call, a streamed
Responses call, an Anthropic call with tools and thinking, and a streamed
Anthropic tool-result round (``messages.stream()``). With ``--replay RUN_ID
--store URL`` the same code runs under tracetape's replay player instead of
reaching the providers. Prints one JSON line: the run id and what the SDKs
returned, so recording and replay can be compared.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
from typing import Any

import tracetape

CHAT_TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Today's forecast for a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
ANTHROPIC_TOOLS = [{"name": "get_weather", "description": "Today's forecast for a city.",
                    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]


def openai_calls(client: Any) -> list[Any]:
    question = [{"role": "user", "content": "What's the weather in Oslo?"}]
    plain = client.chat.completions.create(model="gpt-4o", messages=question, tools=CHAT_TOOLS, seed=7,
                                           temperature=0)
    chunks = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hello"}],
                                            stream=True, stream_options={"include_usage": True})
    streamed = [chunk.model_dump(mode="json") for chunk in chunks]
    with client.responses.stream(model="gpt-4o", input="hello again") as stream:
        response = stream.get_final_response()
    return [plain.model_dump(mode="json"), streamed, response.output_text]


def anthropic_calls(client: Any) -> list[Any]:
    question = {"role": "user", "content": "What's the weather in Kyoto?"}
    first = client.messages.create(model="claude-test-model", max_tokens=512, messages=[question],
                                   tools=ANTHROPIC_TOOLS, thinking={"type": "enabled", "budget_tokens": 256})
    call = first.content[-1]
    round_two = [question, {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
                 {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "Rain"}]}]
    with client.messages.stream(model="claude-test-model", max_tokens=512, messages=round_two,
                                tools=ANTHROPIC_TOOLS) as stream:
        final = stream.get_final_message()
    return [first.model_dump(mode="json"), final.model_dump(mode="json")]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--replay", default="")
    parser.add_argument("--store", default="")
    args = parser.parse_args()

    tracetape.instrument()
    from tracetape.instrumentation.anthropic import AnthropicInstrumentor

    AnthropicInstrumentor().instrument()  # until its entry point is registered
    import anthropic
    import openai

    player: Any = contextlib.nullcontext()
    if args.replay:
        from tracetape import replay

        player = replay.player(args.replay, store=args.store)
    with openai.OpenAI(base_url=os.environ["OPENAI_BASE_URL"], max_retries=0) as oai, \
            anthropic.Anthropic(base_url=os.environ["ANTHROPIC_BASE_URL"], max_retries=0) as claude, \
            player, tracetape.run(agent="model-agent") as run:
        results = openai_calls(oai) + anthropic_calls(claude)
    print(json.dumps({"run_id": run.run_id, "results": results}), flush=True)


if __name__ == "__main__":
    main()
