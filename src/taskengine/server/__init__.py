"""The HTTP server (FastAPI): `create_app(settings)` builds it, `taskengine serve` runs it.

Importing this package is cheap; FastAPI loads when `create_app` is first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from taskengine._lazy import lazy_exports

if TYPE_CHECKING:
    from taskengine.server.app import create_app

__all__ = ["create_app"]


__getattr__, __dir__ = lazy_exports(__name__, {"create_app": "taskengine.server.app"})
