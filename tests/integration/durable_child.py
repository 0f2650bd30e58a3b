"""Child process for the kill -9 tests: runs a counting chain with a slow hook on an SQLite store."""

import asyncio
import sys
import time
from pathlib import Path

from taskengine.chain import load_chain
from taskengine.engine import SimpleEnv
from taskengine.hooks.composite import HookRegistry
from taskengine.hooks.local import LocalHookRegistry
from taskengine.store import open_store

STEPS = 12


def make_hooks() -> HookRegistry:
    local = LocalHookRegistry()

    @local.hook("counter")
    async def bump(input: int) -> int:
        """Add one, slowly, so a kill can land mid-step."""
        await asyncio.sleep(0.02)
        return int(input) + 1

    return HookRegistry(local)


CHAIN = load_chain({
    "id": "count",
    "tasks": [{
        "id": "bump", "handler": "hook", "hook": {"name": "counter"},
        "transition": {"branches": [{"operator": "lt", "when": str(STEPS), "goto": "bump"},
                                    {"operator": "default", "goto": "end"}]},
    }],
})


async def main(db: str, run_id: str, marker: str) -> None:
    store = await open_store(db)
    env = SimpleEnv(hooks=make_hooks(), store=store, lease_ttl=0.3)
    Path(marker).write_text("started")
    result = await env.exec_env(CHAIN, 0, "int", run_id=run_id)
    print(result.output)
    await store.aclose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3]))
    time.sleep(0)
