"""The redactor, kept at its historical path: see `taskengine.observability.redaction`."""

from taskengine.observability.redaction import *  # noqa: F403
from taskengine.observability.redaction import __all__  # noqa: F401
