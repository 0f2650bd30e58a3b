"""Mermaid flowcharts of chains: tasks as nodes, branches as labelled edges, failures dashed."""

from __future__ import annotations

import re
import zlib

from taskengine.chain.model import TERM_END, TaskChainDefinition

__all__ = ["to_mermaid"]


def _node(task_id: str) -> str:
    # Keep ids readable but unique: `a-b` and `a_b` must not collapse into one node.
    safe = re.sub(r"\W", "_", task_id)
    return f"t_{safe}" if safe == task_id else f"t_{safe}_{zlib.crc32(task_id.encode()):08x}"


def _label(text: str) -> str:
    return text.replace('"', "#quot;").replace("|", "#124;")


def to_mermaid(chain: TaskChainDefinition) -> str:
    """A `flowchart TD` with a start node, one node per task and an `end` node."""
    lines = ["flowchart TD", "  start((start))", "  end_node((end))"]
    for task in chain.tasks:
        lines.append(
            f'  {_node(task.id)}["{_label(task.id)}<br/><small>{_label(task.handler)}</small>"]'
        )
    lines.append(f"  start --> {_node(chain.tasks[0].id)}")
    for task in chain.tasks:
        src = _node(task.id)
        branches = task.transition.branches
        if not branches:
            lines.append(f"  {src} --> end_node")
        for br in branches:
            target = "end_node" if not br.goto or br.goto == TERM_END else _node(br.goto)
            op = br.operator or "equals"
            label = "default" if op == "default" else f"{op} {br.when}".strip()
            lines.append(f'  {src} -->|"{_label(label)}"| {target}')
        if task.transition.on_failure:
            target = (
                "end_node"
                if task.transition.on_failure == TERM_END
                else _node(task.transition.on_failure)
            )
            lines.append(f'  {src} -.->|"on_failure"| {target}')
    return "\n".join(lines)
