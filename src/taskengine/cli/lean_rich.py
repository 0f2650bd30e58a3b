"""Import `typer.rich_utils` without the two Rich modules this CLI never uses.

`typer.rich_utils` imports `rich.markdown` (markdown-it, pygments) and `rich.traceback` (attrs)
at its top: about a third of `taskengine --help`. It uses them only for
`rich_markup_mode="markdown"` and for pretty tracebacks, and this CLI turns on neither. While
`typer.rich_utils` is imported, the two modules are stand-ins whose class loads the real module
on first use (a call, an attribute, an isinstance check), so the output stays exactly Typer's.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

__all__ = ["import_rich_utils"]

#: module -> the one name typer.rich_utils imports from it
_DEFERRED = {"rich.markdown": "Markdown", "rich.traceback": "Traceback"}


class _Deferred(type):
    """A stand-in class: every use goes to the real class, imported then."""

    _module: str

    def _real(cls) -> Any:
        return getattr(importlib.import_module(cls._module), cls.__name__)

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        return cls._real()(*args, **kwargs)

    def __getattr__(cls, name: str) -> Any:
        return getattr(cls._real(), name)

    def __instancecheck__(cls, obj: Any) -> bool:
        return isinstance(obj, cls._real())

    def __subclasscheck__(cls, sub: Any) -> bool:
        return issubclass(sub, cls._real())


def import_rich_utils() -> None:
    """Import typer.rich_utils with stand-ins for its unused modules (no-op if done already)."""
    if "typer.rich_utils" in sys.modules:
        return
    placed: dict[str, types.ModuleType] = {}
    for module, name in _DEFERRED.items():
        if module not in sys.modules:
            stand_in = types.ModuleType(module)
            setattr(stand_in, name, _Deferred(name, (), {"_module": module}))
            placed[module] = stand_in
    sys.modules.update(placed)
    try:
        import typer.rich_utils  # noqa: F401
    except ImportError:  # no Rich, or a Typer that needs more: it imports normally later
        pass
    finally:
        for module, stand_in in placed.items():
            if sys.modules.get(module) is stand_in:
                del sys.modules[module]
