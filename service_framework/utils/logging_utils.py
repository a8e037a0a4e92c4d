"""0.0.12's `service_framework.utils.logging_utils`, `get_logger` only (0.0.12's other
names here were internal). Deprecated: write `from service_framework import get_logger`."""

from __future__ import annotations

from ..logs import get_logger
from . import warn_moved

__all__ = ["get_logger"]

warn_moved("`from service_framework.utils.logging_utils import get_logger`",
           "`from service_framework import get_logger`")
