"""A tiny MCP server (official `mcp` SDK 2.x) whose tools the agent in mcp_agent.yaml calls.

It runs as a subprocess of taskengine, configured in mcp_taskengine.yaml:

    mcp_servers:
      - {name: weather, command: [python, examples/mcp_server.py]}
"""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer

server = MCPServer("weather", log_level="WARNING")

_SKIES = {"oslo": "snow", "lisbon": "sun", "berlin": "rain"}


@server.tool()
def get_forecast(city: str, days: int = 1) -> dict:
    """Forecast for a city.

    Args:
        city: City name, e.g. "Oslo".
        days: How many days ahead (1-7).
    """
    sky = _SKIES.get(city.strip().lower(), "clouds")
    return {"city": city, "days": days, "sky": sky, "high_c": 4 if sky == "snow" else 18}


@server.tool()
def get_alerts(city: str) -> list[str]:
    """Weather alerts in force for a city."""
    return ["storm warning"] if city.strip().lower() == "berlin" else []


if __name__ == "__main__":
    server.run()  # stdio
