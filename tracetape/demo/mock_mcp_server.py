"""A small MCP server over stdio, for tests and the demo: deterministic tools and a resource.

Run it as ``python -m tracetape.demo.mock_mcp_server``. It records itself
with ``tracetape.instrument()``, so when an instrumented agent calls it, the
server's side of each request (and the helper tool it calls) lands in the
agent's run, under the agent's tool-call event.
"""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

import tracetape

__all__ = ["server", "main", "FORECASTS", "NOTES_URI"]

NOTES_URI = "notes://today"
FORECASTS = {
    "paris": {"city": "Paris", "temperature_c": 18, "conditions": "light rain"},
    "tokyo": {"city": "Tokyo", "temperature_c": 24, "conditions": "clear"},
    "lima": {"city": "Lima", "temperature_c": 16, "conditions": "overcast"},
}

server: MCPServer = MCPServer("tracetape-mock-tools", version="1.0")


@tracetape.tool
def forecast_table(city: str) -> dict:
    """The server's own lookup, recorded as a nested tool call on the server side."""
    return FORECASTS.get(city.lower(), {"city": city, "temperature_c": None, "conditions": "unknown"})


@server.tool()
def get_weather(city: str) -> dict:
    """Current weather for a city."""
    return forecast_table(city)


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
def fail(reason: str) -> str:
    """Always fails with *reason* (a tool error the client sees as is_error)."""
    raise ToolError(reason)


@server.resource(NOTES_URI, mime_type="text/plain")
def notes() -> str:
    """Today's notes."""
    return "Pack an umbrella for Paris.\nTokyo meeting at 10:00."


def main() -> None:
    tracetape.instrument()
    server.run("stdio")


if __name__ == "__main__":
    main()
