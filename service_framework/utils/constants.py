"""0.0.12's `service_framework.utils.constants`, `PACKAGE_LOGGER_NAME` only. Deprecated:
the framework's logger is `service_framework.get_logger()`, named "service_framework" as
in 0.0.12."""

from __future__ import annotations

from ..logs import LOGGER_NAME
from . import warn_moved

__all__ = ["PACKAGE_LOGGER_NAME"]

PACKAGE_LOGGER_NAME = LOGGER_NAME  # "service_framework", as in 0.0.12

warn_moved("`from service_framework.utils.constants import PACKAGE_LOGGER_NAME`",
           "`service_framework.get_logger()` for the framework's logger")
