"""Logging set-up, kept at its historical path: see `taskengine.observability.logs`."""

from taskengine.observability.logs import *  # noqa: F403
from taskengine.observability.logs import __all__  # noqa: F401
