"""An agent that uses the tools and the resource of a real MCP server over stdio
(``tracetape.demo.mock_mcp_server``, which records itself too).

The session is opened before the run, as agents that connect once do, so the server joins the run
request by request, from the link in ``params._meta``. Usage: ``tools_mcp_agent.py [--replay RUN_ID
--store SQL_URL]``. Prints one JSON line: the run id, what each request returned, and how many
requests a replay served.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

from mcp import Client, StdioServerParameters
from tools_replaying import options, recording

import tracetape


async def work(client: Client) -> list:
    out: list = []
    listed = await client.list_tools()
    out.append(sorted(tool.name for tool in listed.tools))
    added = await client.call_tool("add", {"a": 2, "b": 40})
    out.append(added.structured_content)
    weather = await client.call_tool("get_weather", {"city": "Paris"})
    out.append(json.loads(weather.content[0].text))
    failed = await client.call_tool("fail", {"reason": "no such city"})
    out.append([failed.is_error, failed.content[0].text])
    resources = await client.list_resources()
    out.append([str(resource.uri) for resource in resources.resources])
    notes = await client.read_resource("notes://today")
    out.append(notes.contents[0].text)
    return out


async def session(replay_of: str | None, store: str | None) -> dict:
    server = StdioServerParameters(command=sys.executable, args=["-m", "tracetape.demo.mock_mcp_server"],
                                   env=dict(os.environ))
    async with Client(server) as client:
        with recording("mcp-agent", replay_of, store) as outcome:
            outcome["results"] = await work(client)
    return outcome


def main() -> None:
    args = options()
    tracetape.instrument()
    outcome = asyncio.run(session(args.replay, args.store))
    tracetape.flush()
    print(json.dumps(outcome))


if __name__ == "__main__":
    main()
