"""The provider for bench/overhead.py: the local OpenAI mock in a process of its own.

Its own process, so serving requests does not compete with the measured
client for the GIL. Every answer is the same 24-word text, so a streamed
answer is 28 Server-Sent Events (role, 24 words, finish, usage, ``[DONE]``).
Prints the base URL on one line, then serves until stdin closes.
"""

from __future__ import annotations

import sys

from tracetape.demo.mock_openai import MockOpenAI

ANSWER = " ".join(f"word{i}" for i in range(24))


def main() -> None:
    with MockOpenAI(lambda request: {"content": ANSWER, "tool_calls": []}) as mock:
        print(mock.base_url, flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    main()
