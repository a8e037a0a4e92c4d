"""Reading a trace: `TraceReader` streams its events, `read_trace` loads them all.

Every line is checked; anything malformed raises `TraceFormatError` naming the file and
the line, and a last line without its newline is reported as an interrupted recording.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Iterator

from ..errors import TraceFormatError
from ..events import Event
from . import tagged_json
from .format import BASE_KEYS, DIRECTIONS, KINDS, TRACE_VERSION

__all__ = ["Trace", "TraceReader", "read_trace"]


@dataclass
class Trace:
    """A parsed trace: the header and the events (index = position in `events`)."""

    path: str | None
    header: dict
    events: list[Event] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)  # file line of each event

    @property
    def service(self) -> str:
        return self.header.get("service", "")

    @property
    def config(self) -> dict | None:
        config = self.header.get("config")
        return dict(config) if isinstance(config, dict) else None

    def line_of(self, index: int) -> int | None:
        return self.lines[index] if 0 <= index < len(self.lines) else None


class TraceReader:
    """Reads a trace lazily: `header`, then the events by iteration (lines checked one by one)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = os.fspath(path)
        try:
            self._file = open(self.path, "rb")
        except FileNotFoundError:
            raise TraceFormatError("trace file not found", path=self.path) from None
        self._number = 0
        self.header = self._read_header()

    def _next_line(self) -> bytes | None:
        while True:
            raw = self._file.readline()
            if not raw:
                return None
            self._number += 1
            if not raw.endswith(b"\n"):
                if not raw.strip():
                    return None
                self._fail("the last line is cut off (no newline): the recording was "
                           "interrupted mid-write")
            if raw.strip():
                return raw

    def _fail(self, message: str) -> None:
        raise TraceFormatError(message, path=self.path, line=self._number)

    def _json(self, raw: bytes) -> Any:
        try:
            return json.loads(raw)
        except ValueError as error:
            self._fail(f"not valid JSON: {error}")

    def _read_header(self) -> dict:
        raw = self._next_line()
        if raw is None:
            raise TraceFormatError("empty trace: no header line", path=self.path, line=1)
        header = self._json(raw)
        if not isinstance(header, dict) or "trace" not in header:
            self._fail('expected the header {"trace": 1, "service": …, "started": …}')
        if header["trace"] != TRACE_VERSION:
            self._fail(f"unsupported trace version {header['trace']!r} "
                       f"(this reader knows {TRACE_VERSION})")
        for key in ("service", "started"):
            if not isinstance(header.get(key), str):
                self._fail(f"header: {key!r} must be a string, got {header.get(key)!r}")
        if "seed" in header and (not isinstance(header["seed"], int)
                                 or isinstance(header["seed"], bool)):
            self._fail(f"header: 'seed' must be an integer, got {header['seed']!r}")
        try:
            return tagged_json.from_jsonable(header)
        except (ValueError, TypeError, ArithmeticError) as error:
            self._fail(f"header: {error}")

    def __iter__(self) -> Iterator[tuple[int, Event]]:
        """(line number, event) for each event line."""
        while (raw := self._next_line()) is not None:
            yield self._number, self._event(self._json(raw))

    def _event(self, record: Any) -> Event:
        if not isinstance(record, dict):
            self._fail(f"an event must be a JSON object, got {type(record).__name__}")
        missing = [key for key in BASE_KEYS if key not in record]
        if missing:
            self._fail(f"event without {', '.join(repr(key) for key in missing)}")
        t = record["t"]
        if not isinstance(t, (int, float)) or isinstance(t, bool):
            self._fail(f"event 't' must be a number of seconds, got {t!r}")
        if record["dir"] not in DIRECTIONS:
            self._fail(f"event 'dir' must be 'in' or 'out', got {record['dir']!r}")
        if record["kind"] not in KINDS:
            self._fail(f"event 'kind' must be one of {', '.join(KINDS)}, got "
                       f"{record['kind']!r}")
        for key in ("name", "workflow_id"):
            if not isinstance(record[key], str):
                self._fail(f"event {key!r} must be a string, got {record[key]!r}")
        try:
            payload = {key: tagged_json.from_jsonable(value) for key, value in record.items()
                       if key not in BASE_KEYS}
        except (ValueError, TypeError, ArithmeticError) as error:
            self._fail(f"bad tagged value: {error}")
        return Event(float(t), record["dir"], record["kind"], record["name"],
                     record["workflow_id"], payload)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "TraceReader":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def read_trace(path: str | os.PathLike) -> Trace:
    """The whole trace; `TraceFormatError` naming the line of the first bad one."""
    with TraceReader(path) as reader:
        trace = Trace(reader.path, reader.header)
        for number, event in reader:
            trace.events.append(event)
            trace.lines.append(number)
    return trace
