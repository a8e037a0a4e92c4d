"""The words of the trace format (SPEC §12) that its writer and its reader share."""

from __future__ import annotations

import os

from .errors import ServiceFrameworkError

TRACE_VERSION = 1
DIRECTIONS = ("in", "out")
KINDS = ("request", "reply", "message", "state", "error")
BASE_KEYS = ("t", "dir", "kind", "name", "workflow_id")  # in every event; the rest: payload


class TraceFormatError(ServiceFrameworkError, ValueError):
    """A trace file cannot be read; the message names the file and the line."""

    def __init__(self, message: str, *, path: str | os.PathLike | None = None,
                 line: int | None = None) -> None:
        self.path = os.fspath(path) if path is not None else None
        self.line = line
        where = ":".join(str(part) for part in (self.path, line) if part is not None)
        super().__init__(f"{where}: {message}" if where else message)
