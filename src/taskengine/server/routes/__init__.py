"""One router per resource; `all_routers()` lists them in the order the app mounts them."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import APIRouter

__all__ = ["all_routers"]


def all_routers() -> list[APIRouter]:
    from taskengine.server.routes import activity, health, hooks, openai, runs, taskchains, tasks

    return [
        health.router,
        tasks.router,
        taskchains.router,
        openai.router,
        hooks.router,
        runs.router,
        activity.router,
    ]
