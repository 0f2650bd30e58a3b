"""The settings loader, kept at its historical path: see `taskengine.settings`."""

from taskengine.settings.keys import format_key_path
from taskengine.settings.loader import Loader, fetch_secrets

__all__ = ["Loader", "fetch_secrets", "format_key_path"]
