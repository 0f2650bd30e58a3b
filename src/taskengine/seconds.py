"""`Seconds`: a settings field given as a number of seconds or a Go-style duration ("30s").

Defined with the chain's `Duration` in `taskengine.chain.duration` (one duration parser).
"""

from __future__ import annotations

from taskengine.chain.duration import Seconds

__all__ = ["Seconds"]
