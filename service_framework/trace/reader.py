"""Reading a trace: `TraceReader` streams its events; `read_trace` loads them all, or with
`stream=True` keeps only where each event starts and reads it again when asked.

Every line is checked; anything malformed raises `TraceFormatError` naming the file and
the line, and a last line without its newline is reported as an interrupted recording.
Bounds: only a regular file is read (a FIFO or a device is refused), and one line may hold
at most `MAX_LINE_BYTES` (a longer one is an error, not an allocation).
"""

from __future__ import annotations

import json
import os
import stat
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Iterator, overload

from ..errors import TraceFormatError
from ..events import Event
from ..wire.codec import DEFAULT_MAX_MESSAGE_BYTES
from . import tagged_json
from .format import BASE_KEYS, DIRECTIONS, KINDS, TRACE_VERSION

__all__ = ["MAX_LINE_BYTES", "StreamedEvents", "Trace", "TraceReader", "read_trace"]

MAX_LINE_BYTES = 4 * DEFAULT_MAX_MESSAGE_BYTES
"""The longest trace line read (64 MiB): a message of up to `max_message_bytes` in tagged
JSON (bytes in base64, Decimals as strings) with room to spare."""


@dataclass
class Trace:
    """A parsed trace: the header and the events (index = position in `events`)."""

    path: str | None
    header: dict
    events: Sequence[Event] = field(default_factory=list)
    lines: Sequence[int] = field(default_factory=list)  # file line of each event

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

    def __init__(self, path: str | os.PathLike, *, max_line_bytes: int = MAX_LINE_BYTES) -> None:
        self.path = os.fspath(path)
        self.max_line_bytes = max_line_bytes
        try:
            self._file = open(self.path, "rb")  # noqa: SIM115 - closed by close()
        except FileNotFoundError:
            raise TraceFormatError("trace file not found", path=self.path) from None
        except (OSError, ValueError) as error:  # ValueError: a NUL byte in the path
            raise TraceFormatError(f"cannot open: {getattr(error, 'strerror', None) or error}",
                                   path=self.path) from None
        if not stat.S_ISREG(os.fstat(self._file.fileno()).st_mode):
            self._file.close()
            raise TraceFormatError("not a regular file", path=self.path)
        self._number = 0
        self.offset = 0  # where the line last read began
        self.header = self._read_header()

    def _next_line(self) -> bytes | None:
        while True:
            self.offset = self._file.tell()
            raw = self._file.readline(self.max_line_bytes + 1)
            if not raw:
                return None
            self._number += 1
            if len(raw) > self.max_line_bytes:
                self._fail(f"line longer than {self.max_line_bytes} bytes")
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
        except RecursionError:
            self._fail("not valid JSON: nested too deeply")

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
        except (ValueError, TypeError, ArithmeticError, RecursionError) as error:
            self._fail(f"header: {error or 'nested too deeply'}")

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
        except (ValueError, TypeError, ArithmeticError, RecursionError) as error:
            self._fail(f"bad tagged value: {error or 'nested too deeply'}")
        return Event(float(t), record["dir"], record["kind"], record["name"],
                     record["workflow_id"], payload)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "TraceReader":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


    def event_at(self, offset: int, number: int) -> Event:
        """The event of the line at byte `offset` (line `number`), read again."""
        self._file.seek(offset)
        self._number = number - 1
        raw = self._next_line()
        if raw is None:
            self._fail("the trace changed while it was replayed")
        return self._event(self._json(raw))


class StreamedEvents(Sequence[Event]):
    """The events of a trace file, each read again when asked: memory holds two integers
    per event (where it starts, its line), never the events themselves."""

    def __init__(self, reader: TraceReader) -> None:
        self._reader = reader
        self._offsets, self.lines = array("q"), array("q")
        for number, _ in reader:  # every line is checked once, here
            self._offsets.append(reader.offset)
            self.lines.append(number)

    def __len__(self) -> int:
        return len(self._offsets)

    @overload
    def __getitem__(self, index: int) -> Event: ...
    @overload
    def __getitem__(self, index: slice) -> list[Event]: ...

    def __getitem__(self, index: int | slice) -> Event | list[Event]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        return self._reader.event_at(self._offsets[index], self.lines[index])

    def __iter__(self) -> Iterator[Event]:
        for index in range(len(self)):
            yield self[index]

    def close(self) -> None:
        self._reader.close()


def read_trace(path: str | os.PathLike, *, stream: bool = False) -> Trace:
    """The whole trace; `TraceFormatError` naming the line of the first bad one.

    `stream=True` checks every line but keeps none: the events are read again from the
    file when they are used (a replay of a trace larger than memory); close the trace's
    `events` (`StreamedEvents.close`) when done.
    """
    reader = TraceReader(path)
    if stream:
        try:
            events = StreamedEvents(reader)
        except BaseException:
            reader.close()
            raise
        return Trace(reader.path, reader.header, events, events.lines)
    with reader:
        trace = Trace(reader.path, reader.header, [], [])
        for number, event in reader:
            trace.events.append(event)  # type: ignore[attr-defined]
            trace.lines.append(number)  # type: ignore[attr-defined]
    return trace
