"""Spelling hints for unknown names ("did you mean …?"): one helper for every message.

`closest(name, choices)` is the nearest known name (or None); `did_you_mean(name, choices)` is
the message tail ` (did you mean 'x'?)`, empty when nothing is close enough.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["closest", "did_you_mean"]

#: How alike (0..1, difflib's ratio) a known name must be to be suggested.
DEFAULT_CUTOFF = 0.6


def closest(name: str, choices: Iterable[str], *, cutoff: float = DEFAULT_CUTOFF) -> str | None:
    """The known name nearest to `name`, or None when none is at least `cutoff` alike."""
    import difflib  # only a message with a typo in it needs it

    found = difflib.get_close_matches(name, list(choices), n=1, cutoff=cutoff)
    return found[0] if found else None


def did_you_mean(name: str, choices: Iterable[str], *, cutoff: float = DEFAULT_CUTOFF) -> str:
    """` (did you mean 'x'?)` for the nearest known name, or "" when none is close."""
    guess = closest(name, choices, cutoff=cutoff)
    return f" (did you mean {guess!r}?)" if guess is not None else ""
