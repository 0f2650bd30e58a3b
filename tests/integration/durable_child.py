"""Child process for the kill -9 tests: runs a counting chain with a slow hook on an SQLite store."""

import asyncio
import sys
from pathlib import Path

from taskengine.chain import load_chain
from taskengine.engine import SimpleEnv
from taskengine.engine.events import RunObserver
from taskengine.hooks.builtin import BuiltinHooks
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

    return HookRegistry(local, BuiltinHooks())


CHAIN = load_chain(
    {
        "id": "count",
        "tasks": [
            {
                "id": "bump",
                "handler": "hook",
                "hook": {"name": "counter"},
                "transition": {"branches": [{"operator": "default", "goto": "check"}]},
            },
            {
                # As in Go, a hook branches on its rendered output_template ("ok" without one)
                "id": "check",
                "handler": "hook",
                "hook": {"name": "echo", "tool_name": "echo"},
                "output_template": "{{ .bump }}",
                "transition": {
                    "branches": [
                        {"operator": "lt", "when": str(STEPS), "goto": "bump"},
                        {"operator": "default", "goto": "done"},
                    ]
                },
            },
            {"id": "done", "handler": "noop", "input_var": "bump"},
        ],
    }
)


class Marker(RunObserver):
    """Signals the parent once the run is recorded, so every kill lands on a run that exists."""

    def __init__(self, path: str) -> None:
        self.path = path

    async def on_run_start(self, *, run, input, input_type) -> None:
        Path(self.path).write_text(run.run_id)


async def main(db: str, run_id: str, marker: str, lease_ttl: float = 0.3) -> None:
    store = await open_store(db)
    env = SimpleEnv(
        hooks=make_hooks(), store=store, lease_ttl=lease_ttl, observers=[Marker(marker)]
    )
    result = await env.exec_env(CHAIN, 0, "int", run_id=run_id)
    print(result.output)
    await store.aclose()


async def resume(db: str, run_id: str, marker: str) -> None:
    store = await open_store(db)
    env = SimpleEnv(hooks=make_hooks(), store=store, lease_ttl=30, observers=[Marker(marker)])
    result = await env.resume(run_id, breakpoints=())
    print(result.output)
    await store.aclose()


if __name__ == "__main__" and sys.argv[1] == "resume":
    asyncio.run(resume(sys.argv[2], sys.argv[3], sys.argv[4]))
elif __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], *map(float, sys.argv[4:5])))
