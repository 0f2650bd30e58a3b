"""Chain files the MCP serving tests hand to `taskengine mcp --chain` (written to tmp_path)."""

from __future__ import annotations

from pathlib import Path

import yaml

#: text in → key/value parsed → echoed back: no model needed
ORDER = {
    "id": "order_summary",
    "description": "Parse 'key=value' pairs and return them as JSON.",
    "tasks": [
        {
            "id": "parse",
            "handler": "parse_key_value",
            "transition": {"branches": [{"operator": "default", "goto": "check"}]},
        },
        {"id": "check", "handler": "noop"},
    ],
}

#: a chat chain: one model turn (the FakeLLMServer answers)
CHAT = {
    "id": "assistant",
    "tasks": [
        {
            "id": "answer",
            "handler": "model_execution",
            "execute_config": {"model": "fake-model", "provider": "fake"},
        }
    ],
}


#: always fails: the error result must still carry the run id
REFUSE = {
    "id": "refuse",
    "tasks": [{"id": "no", "handler": "raise_error", "prompt_template": "refused {{ .input }}"}],
}


def write_chains(folder: Path) -> list[str]:
    paths = []
    for chain in (ORDER, CHAT, REFUSE):
        path = folder / f"{chain['id']}.yaml"
        path.write_text(yaml.safe_dump(chain), encoding="utf-8")
        paths.append(str(path))
    return paths


def write_config(folder: Path, llm_base_url: str) -> str:
    path = folder / "taskengine.yaml"
    path.write_text(
        yaml.safe_dump({"providers": [{"name": "fake", "base_url": llm_base_url}]}),
        encoding="utf-8",
    )
    return str(path)
