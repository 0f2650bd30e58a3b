"""Metrics and costs, kept at its historical path: see `taskengine.observability.metrics`."""

from taskengine.observability.metrics import *  # noqa: F403
from taskengine.observability.metrics import __all__  # noqa: F401
