"""Subscriber B of planted bug 4 (the definitions are in `watcher.py`)."""

from watcher import config_model, connection_models  # noqa: F401
