"""A chain drawn as inline SVG: tasks top to bottom, branches as curves, the path taken lit.

Server-side layout keeps the page free of JavaScript libraries: tasks sit in chain order, a
forward branch curves right and a backward one (a loop) curves left, so edges rarely cross.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

__all__ = ["chain_svg"]

ROW = 56
WIDTH = 180
LEFT = 150
END = "end"


@dataclass(slots=True)
class _Edge:
    source: str
    target: str
    label: str
    failure: bool


def _edges(chain: dict[str, Any]) -> list[_Edge]:
    out: list[_Edge] = []
    for task in chain.get("tasks", []):
        transition = task.get("transition") or {}
        branches = transition.get("branches") or []
        if not branches:
            out.append(_Edge(task["id"], END, "", False))
        for branch in branches:
            op = branch.get("operator") or "equals"
            label = "default" if op == "default" else f"{op} {branch.get('when', '')}".strip()
            out.append(_Edge(task["id"], branch.get("goto") or END, label, False))
        if transition.get("on_failure"):
            out.append(_Edge(task["id"], transition["on_failure"], "on_failure", True))
    return out


def chain_svg(chain: dict[str, Any], path: Sequence[str] = (), current: str | None = None) -> str:
    """SVG markup for `chain` (a definition dict); `path` is the task ids visited, in order."""
    ids = [t["id"] for t in chain.get("tasks", [])]
    row = {task_id: i for i, task_id in enumerate(ids)}
    row[END] = len(ids)
    visited = set(path)
    taken = set(itertools.pairwise(path))
    if path:
        taken.add((path[-1], current or END))
    height = (len(ids) + 1) * ROW + 20
    parts = [
        f'<svg class="chain-graph" viewBox="0 0 {LEFT * 2 + WIDTH} {height}" '
        f'width="{LEFT * 2 + WIDTH}" height="{height}" role="img" aria-label="chain graph">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto"><path d="M0,0L10,5L0,10z"/></marker></defs>',
    ]
    for edge in _edges(chain):
        if edge.target not in row:
            continue
        parts.append(_edge_svg(edge, row, (edge.source, edge.target) in taken))
    for task_id in [*ids, END]:
        classes = ["node"]
        if task_id in visited:
            classes.append("visited")
        if task_id == current:
            classes.append("current")
        if task_id == END:
            classes.append("end")
        y = row[task_id] * ROW + 10
        parts.append(
            f'<g class="{" ".join(classes)}" data-task="{escape(task_id)}">'
            f'<rect x="{LEFT}" y="{y}" width="{WIDTH}" height="34" rx="8"/>'
            f'<text x="{LEFT + WIDTH / 2}" y="{y + 22}" text-anchor="middle">'
            f"{escape(task_id[:28])}</text></g>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _edge_svg(edge: _Edge, row: dict[str, int], lit: bool) -> str:
    a, b = row[edge.source], row[edge.target]
    y1 = a * ROW + 10 + 34
    y2 = b * ROW + 10
    classes = "edge" + (" taken" if lit else "") + (" failure" if edge.failure else "")
    if b == a + 1:
        x = LEFT + WIDTH / 2
        d = f"M{x},{y1} L{x},{y2}"
        lx, ly = x + 6, (y1 + y2) / 2 + 4
    else:
        forward = b > a
        side = LEFT + WIDTH if forward else LEFT
        bend = min(140, 30 + 18 * abs(b - a))
        cx = side + bend if forward else side - bend
        y1, y2 = a * ROW + 27, b * ROW + 27
        d = f"M{side},{y1} C{cx},{y1} {cx},{y2} {side},{y2}"
        lx, ly = (cx + side) / 2 + (4 if forward else -4), (y1 + y2) / 2
    anchor = "start" if b >= a else "end"
    return (
        f'<g class="{classes}"><path d="{d}" marker-end="url(#arrow)"/>'
        f'<text x="{lx}" y="{ly}" text-anchor="{anchor}">{escape(edge.label[:24])}</text></g>'
    )
