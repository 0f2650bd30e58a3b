"""The five extension points of docs/architecture.md, used together as the page shows them:
a registered handler, a provider built on BaseProvider, a local hook, a run store, an observer."""

from __future__ import annotations

from pathlib import Path

from taskengine import DataType, Engine, Message, RunObserver, open_store, register_handler
from taskengine.handlers import unregister_handler
from taskengine.providers.base import BaseProvider, ChatResult
from taskengine.providers.registry import ProviderRegistry
from taskengine.providers.resolver import ModelResolver


class EchoProvider(BaseProvider):
    type = "echo"

    async def _chat_once(self, messages, *, model, temperature, tools, max_tokens, timeout):
        reply = Message(role="assistant", content=messages[-1].content)
        return ChatResult(message=reply, provider=self.name, model=model)


class StepLog(RunObserver):
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    async def on_step_end(self, *, run, step):
        self.seen.append((step.task_id, step.transition))


CHAIN = {
    "id": "extended",
    "tasks": [
        {"id": "a", "handler": "test_shout_ext",
         "transition": {"branches": [{"operator": "default", "goto": "b"}]}},
        {"id": "b", "handler": "raw_string", "prompt_template": "say {{ .a }}",
         "execute_config": {"model": "m"},
         "transition": {"branches": [{"operator": "default", "goto": "end"}]}},
    ],
}  # fmt: skip


async def test_handler_provider_store_and_observer_work_together(tmp_path: Path) -> None:
    @register_handler("test_shout_ext")
    async def shout(ctx, task, input, input_type):
        text = str(input).upper()
        return text, DataType.STRING, "loud" if text.endswith("!") else "calm"

    registry = ProviderRegistry()
    registry.add(EchoProvider("echo"), default=True)
    log = StepLog()
    store = await open_store(f"sqlite:///{tmp_path / 'runs.db'}")
    try:
        engine = Engine(resolver=ModelResolver(registry), observers=[log], store=store)
        result = await engine.run(CHAIN, "hi!")
        record = await store.get_run(result.run_id)
    finally:
        await store.aclose()
        unregister_handler("test_shout_ext")
    assert (result.status, result.output) == ("succeeded", "say HI!")
    assert log.seen == [("a", "loud"), ("b", "say HI!")]
    assert record.status == "succeeded" and record.chain_id == "extended"
    assert result.state[1].meta["provider"] == "echo"
