"""The framework logger: workflow ids on every record, handlers set up once."""

from __future__ import annotations

import contextvars
import logging
import logging.handlers
from pathlib import Path

from .errors import ConfigError

LOGGER_NAME = "service_framework"
_FORMAT = "%(asctime)s %(levelname)s [%(service)s %(workflow_id)s] %(name)s: %(message)s"

workflow_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("workflow_id", default="-")
service_name_var: contextvars.ContextVar[str] = contextvars.ContextVar("service", default="-")


class _ContextFilter(logging.Filter):
    """Stamps each record with the workflow id and service of the code that logged it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "workflow_id"):
            record.workflow_id = workflow_id_var.get()
        if not hasattr(record, "service"):
            record.service = service_name_var.get()
        return True


_filter = _ContextFilter()
_handlers: dict[str, logging.Handler] = {}


def get_logger() -> logging.Logger:
    """The logger for service code; its records carry the current workflow id."""
    logger = logging.getLogger(LOGGER_NAME)
    if _filter not in logger.filters:
        logger.addFilter(_filter)
    return logger


def check_level(level: str | int) -> int:
    """The numeric log level; ConfigError for a name logging does not know."""
    if isinstance(level, int):
        return level
    value = logging.getLevelName(str(level).upper())
    if not isinstance(value, int):
        raise ConfigError(f"unknown log level {level!r} (expected DEBUG, INFO, WARNING, "
                          "ERROR or CRITICAL)")
    return value


def setup_logging(console_loglevel: str | int = "INFO", log_path: str | None = None,
                  file_loglevel: str | int = "INFO", backup_count: int = 24) -> logging.Logger:
    """Installs the console (and optional hourly rotating file) handler once per process.

    Called again with other settings, it adjusts the existing handlers instead of adding
    more: 0.0.12 rebuilt handlers per message.
    """
    logger = get_logger()
    console_level = check_level(console_loglevel)
    console = _handlers.get("console")
    if console is None:
        console = logging.StreamHandler()
        console.setFormatter(logging.Formatter(_FORMAT))
        console.addFilter(_filter)
        logger.addHandler(console)
        _handlers["console"] = console
    console.setLevel(console_level)
    levels = [console_level]
    if log_path:
        key = f"file:{Path(log_path).resolve()}"
        handler = _handlers.get(key)
        if handler is None:
            Path(log_path).parent.mkdir(parents=True, exist_ok=True)
            handler = logging.handlers.TimedRotatingFileHandler(
                log_path, when="H", backupCount=int(backup_count), encoding="utf-8")
            handler.setFormatter(logging.Formatter(_FORMAT))
            handler.addFilter(_filter)
            logger.addHandler(handler)
            _handlers[key] = handler
        handler.setLevel(check_level(file_loglevel))
        levels.append(handler.level)
    logger.setLevel(min(levels))
    logger.propagate = True
    return logger
