"""The HTTP server (FastAPI): `create_app(settings)` builds it, `taskengine serve` runs it.

Importing this package is cheap; FastAPI loads when `create_app` is first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from taskengine.server.app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from taskengine.server.app import create_app

        return create_app
    raise AttributeError(f"module 'taskengine.server' has no attribute {name!r}")
