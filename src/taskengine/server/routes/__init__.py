"""One router per resource; `all_routers()` lists them in the order the app mounts them.

Starlette tries routes in order and FastAPI matches an included router's routes twice (to
select, then to handle), so the two routes every run comes through, `POST /tasks` and the
OpenAI endpoint, are mounted first (their paths share no prefix with the others, so the order
changes nothing else).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import APIRouter

__all__ = ["all_routers"]


def all_routers() -> list[APIRouter]:
    from taskengine.server.routes import activity, health, hooks, openai, runs, taskchains, tasks

    return [
        tasks.router,
        openai.router,
        health.router,
        taskchains.router,
        hooks.router,
        runs.router,
        activity.router,
    ]
