"""The framework logger: workflow ids on every record, handlers set up once.

A peer cannot flood or forge the log (bounds documented in the README's Limits):
- `SafeFormatter` writes each record as one line of at most `MAX_LINE_CHARS` characters:
  control characters (a newline in a workflow id, an ANSI escape) are escaped, long peer
  data is cut with a note of how much; a traceback follows on lines that start with
  `  | `, so no line of it can pass for a record.
- `RateLimit` lets at most `BURST` warnings (and errors) per call site through in each
  `WINDOW_S`; the next one that passes says how many were suppressed.
"""

from __future__ import annotations

import contextvars
import logging
import logging.handlers
import re
import time
from collections.abc import Callable
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


MAX_LINE_CHARS = 1000
BURST = 20
WINDOW_S = 10.0
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _escape(match: re.Match) -> str:
    char = match.group()
    return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(char) or f"\\x{ord(char):02x}" \
        if ord(char) < 0x100 else f"\\u{ord(char):04x}"


def one_line(text: str, limit: int = MAX_LINE_CHARS) -> str:
    """`text` cut to `limit` characters (saying how many were cut), control characters
    escaped: safe to write as (part of) one log line."""
    if len(text) > limit:
        text = f"{text[:limit]}… ({len(text) - limit} more characters cut)"
    return _CONTROL.sub(_escape, text)


class SafeFormatter(logging.Formatter):
    """One bounded line per record, whatever a peer put into its message or workflow id."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        record.message = one_line(message, MAX_LINE_CHARS // 2)
        for field in ("workflow_id", "service"):
            value = getattr(record, field, None)
            if isinstance(value, str) and (len(value) > 64 or _CONTROL.search(value)):
                setattr(record, field, one_line(value, 64))
        if self.usesTime():
            record.asctime = self.formatTime(record, self.datefmt)
        line = one_line(self.formatMessage(record))
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        details = [text for text in (record.exc_text, record.stack_info) if text]
        if details:  # our own traceback, whose exception message may hold peer data
            line += "".join(f"\n  | {one_line(part)}" for text in details
                            for part in text.splitlines())
        return line


class RateLimit(logging.Filter):
    """At most `burst` records of level WARNING or more per call site in each `window_s`
    (a peer sending 100k bad messages gets a few lines, not 100k)."""

    def __init__(self, burst: int = BURST, window_s: float = WINDOW_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.burst, self.window_s, self.clock = burst, window_s, clock
        self._sites: dict[tuple[str, int], list] = {}  # site -> [window start, count, held]

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        now = self.clock()
        site = self._sites.get((record.pathname, record.lineno))
        if site is None:
            if len(self._sites) >= 10_000:  # call sites are few; bounded all the same
                self._sites.clear()
            site = self._sites[(record.pathname, record.lineno)] = [now, 0, 0]
        if now - site[0] >= self.window_s:
            site[0], site[1] = now, 0
        site[1] += 1
        if site[1] > self.burst:
            site[2] += 1
            return False
        if site[2]:
            record.msg = f"{record.msg} [{site[2]} similar message(s) suppressed]"
            site[2] = 0
        return True


_filter = _ContextFilter()
_rate_limit = RateLimit()


def reset_rate_limit() -> None:
    """Forgets what was suppressed so far (the pytest plugin calls it before each test, so
    one test's flood does not silence the next one's warnings)."""
    _rate_limit._sites.clear()
_handlers: dict[str, logging.Handler] = {}


def get_logger() -> logging.Logger:
    """The logger for service code; its records carry the current workflow id."""
    logger = logging.getLogger(LOGGER_NAME)
    if _filter not in logger.filters:
        logger.addFilter(_filter)
        logger.addFilter(_rate_limit)
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
        console.setFormatter(SafeFormatter(_FORMAT))
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
            handler.setFormatter(SafeFormatter(_FORMAT))
            handler.addFilter(_filter)
            logger.addHandler(handler)
            _handlers[key] = handler
        handler.setLevel(check_level(file_loglevel))
        levels.append(handler.level)
    logger.setLevel(min(levels))
    logger.propagate = True
    return logger
