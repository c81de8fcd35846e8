"""The bundled example agent: a tool-calling loop on the real ``openai`` SDK.

It is an ordinary agent with tracetape's one line added; point
``OPENAI_BASE_URL`` at any OpenAI-compatible server (the demo starts a local
mock). It prints one JSON line with the run id and the final answer.
"""

from __future__ import annotations

import argparse
import json
import os

import tracetape

FORECASTS = {
    "lisbon": {"sky": "sunny", "high_c": 24, "low_c": 16},
    "paris": {"sky": "light rain", "high_c": 14, "low_c": 9},
    "tokyo": {"sky": "cloudy", "high_c": 19, "low_c": 12},
}
TOOLS = [{
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Today's forecast for a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}]


@tracetape.tool
def get_weather(city: str) -> dict:
    """A tool the model can call; recorded with its arguments and result."""
    return {"city": city, **FORECASTS.get(city.lower(), {"sky": "unknown"})}


def run_agent(question: str, model: str = "gpt-4o", max_turns: int = 5) -> tuple[str, str]:
    import openai

    with openai.OpenAI(base_url=os.environ.get("OPENAI_BASE_URL"), max_retries=0) as client, \
            tracetape.run(agent="weather-agent", tags=["demo", f"model={model}"]) as run:
        messages: list[dict] = [
            {"role": "system", "content": "You answer weather questions using the get_weather tool."},
            {"role": "user", "content": question},
        ]
        for _ in range(max_turns):
            reply = client.chat.completions.create(model=model, messages=messages, tools=TOOLS, temperature=0)
            message = reply.choices[0].message
            if not message.tool_calls:
                return run.run_id, message.content or ""
            messages.append(message.model_dump(exclude_none=True))
            for call in message.tool_calls:
                result = get_weather(**json.loads(call.function.arguments))
                messages.append({"role": "tool", "tool_call_id": call.id, "content": json.dumps(result)})
        return run.run_id, "(no answer within the turn limit)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("question", nargs="?", default="What's the weather in Lisbon?")
    args = parser.parse_args()
    tracetape.instrument()
    run_id, answer = run_agent(args.question)
    print(json.dumps({"run_id": run_id, "answer": answer}), flush=True)


if __name__ == "__main__":
    main()
