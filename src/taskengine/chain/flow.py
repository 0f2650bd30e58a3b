"""The chain as a graph of tasks: which tasks a run can reach, and loops it can never leave.

Lint warns about both; chains may have 10 000 tasks, so every walk here is iterative.
"""

from __future__ import annotations

from taskengine.chain.model import TERM_END, TaskChainDefinition, TaskDefinition

__all__ = ["closed_loops", "unreachable_tasks"]


def _targets(task: TaskDefinition) -> list[str]:
    out = [b.goto for b in task.transition.branches if b.goto]
    if task.transition.on_failure:
        out.append(task.transition.on_failure)
    return out


def unreachable_tasks(chain: TaskChainDefinition) -> list[TaskDefinition]:
    """Tasks (with an id) no branch or `on_failure` leads to from the first task."""
    tasks = {t.id: t for t in chain.tasks}
    first = chain.tasks[0].id
    seen = {first}
    todo = [first]
    while todo:
        task = tasks.get(todo.pop())
        if task is None:
            continue
        targets = [b.goto for b in task.transition.branches]
        targets.append(task.transition.on_failure)
        for target in targets:
            if target and target in tasks and target not in seen:
                seen.add(target)
                todo.append(target)
    return [task for task in chain.tasks if task.id and task.id not in seen]


def closed_loops(chain: TaskChainDefinition) -> list[list[str]]:
    """Loops no branch can leave (task ids in order): a run would only stop at max_steps."""
    tasks = {t.id: t for t in chain.tasks if t.id}
    edges = {tid: _targets(task) for tid, task in tasks.items()}
    loops = []
    for group in _strongly_connected(edges):
        members = set(group)
        looping = len(group) > 1 or group[0] in edges[group[0]]
        if looping and not any(_leaves(tasks[tid], edges[tid], members) for tid in group):
            loops.append(group)
    return loops


def _leaves(task: TaskDefinition, targets: list[str], members: set[str]) -> bool:
    """Whether a run at `task` can get out of the loop `members`."""
    branches = task.transition.branches
    return (
        not branches
        or any(t == TERM_END or t not in members for t in targets)
        or not any((b.operator or "equals") == "default" for b in branches)
    )


class _Tarjan:
    """Tarjan's strongly connected components, iteratively."""

    def __init__(self, edges: dict[str, list[str]]) -> None:
        self.edges = edges
        self.index: dict[str, int] = {}
        self.low: dict[str, int] = {}
        self.on_stack: set[str] = set()
        self.stack: list[str] = []
        self.groups: list[list[str]] = []

    def enter(self, node: str) -> None:
        self.index[node] = self.low[node] = len(self.index)
        self.stack.append(node)
        self.on_stack.add(node)

    def close(self, node: str) -> None:
        """Pop the component rooted at `node`, if it is a root."""
        if self.low[node] != self.index[node]:
            return
        group = []
        while True:
            member = self.stack.pop()
            self.on_stack.discard(member)
            group.append(member)
            if member == node:
                break
        self.groups.append(group[::-1])

    def visit(self, root: str) -> None:
        edges, index, low = self.edges, self.index, self.low
        self.enter(root)
        work = [(root, iter(edges[root]))]
        while work:
            node, children = work[-1]
            child = next((c for c in children if c in edges), None)
            if child is not None:
                if child not in index:
                    self.enter(child)
                    work.append((child, iter(edges[child])))
                elif child in self.on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            self.close(node)


def _strongly_connected(edges: dict[str, list[str]]) -> list[list[str]]:
    """The strongly connected components of `edges`, each in discovery order."""
    tarjan = _Tarjan(edges)
    for root in edges:
        if root not in tarjan.index:
            tarjan.visit(root)
    return tarjan.groups
