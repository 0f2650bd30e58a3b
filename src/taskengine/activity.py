"""Activity tracking, kept at its historical path: see `taskengine.observability.activity`."""

from taskengine.observability.activity import *  # noqa: F403
from taskengine.observability.activity import __all__  # noqa: F401
