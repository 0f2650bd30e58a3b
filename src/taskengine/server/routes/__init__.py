"""One router per resource; `all_routers()` lists them in the order the app mounts them.

`run_routers()` are the two every run comes through (`POST /tasks`, the OpenAI endpoint). The
app puts their routes first in its own route list instead of including them: Starlette tries
routes in order, and FastAPI matches an included router's routes twice per request (to select,
then to handle), which cost these endpoints ~25 µs a request (`benchmarks/server_load.py`).
Their paths share no prefix with any other route, so the order changes nothing else.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import APIRouter

__all__ = ["all_routers", "other_routers", "run_routers"]


def run_routers() -> list[APIRouter]:
    from taskengine.server.routes import openai, tasks

    return [tasks.router, openai.router]


def other_routers() -> list[APIRouter]:
    from taskengine.server.routes import activity, health, hooks, runs, taskchains

    return [health.router, taskchains.router, hooks.router, runs.router, activity.router]


def all_routers() -> list[APIRouter]:
    return run_routers() + other_routers()
