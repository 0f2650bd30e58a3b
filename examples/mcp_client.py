"""The other direction: an MCP client (official SDK) calling a chain served by `taskengine mcp`.

    python examples/mcp_client.py "customer=ACME, category=billing, amount=900, priority=high"

It starts `taskengine mcp --chain examples/ticket_router.yaml --hooks examples/ticket_hooks.py`
over stdio, lists the tools, and calls the chain's tool.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
from pathlib import Path

from mcp import Client, StdioServerParameters

HOOKS = ["--hooks", "examples/ticket_hooks.py"]


async def main(ticket: str) -> None:
    beside_python = Path(sys.executable).with_name("taskengine")  # the venv's script
    command = str(beside_python) if beside_python.exists() else shutil.which("taskengine")
    server = StdioServerParameters(
        command=command or "taskengine",
        args=["mcp", "--chain", "examples/ticket_router.yaml", *HOOKS],
    )
    async with Client(server) as client:
        tools = await client.list_tools()
        print("tools:", ", ".join(tool.name for tool in tools.tools))
        result = await client.call_tool("ticket-router", {"input": ticket})
        print("run:", result.structured_content["runId"])
        print("output:", result.structured_content["output"])


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "customer=ACME, category=billing"))
