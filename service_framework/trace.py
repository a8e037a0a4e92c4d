"""Traces (SPEC §12): every message in and out of a service, as JSON Lines.

The first line is a header, ``{"trace": 1, "service", "started", "seed"?, …}``; every other
line is one event, ``{"t", "dir", "kind", "name", "workflow_id", "args" | "return_args" |
"error" | …}``, with ``t`` in seconds since recording started (the transport's clock) and
values written through `service_framework.tagged_json`, so that every codec type reads
back exactly. Events are numbered from 0 after the header: that index is what
`ReplayDivergence` and ``service_framework --replay`` name.

`TraceRecorder` listens to a runtime's events and writes them in batches (every
`flush_every` events, after `flush_interval_s`, and on close), always whole lines: a
killed service loses at most the last batch, a stopped one loses nothing, and the file
never ends in half a line. `read_trace` / `TraceReader` parse a trace and name the line of
anything malformed.
"""

from __future__ import annotations

import difflib
import json
import json.encoder
import os
import threading
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterator, Mapping

from . import tagged_json
from .errors import ServiceFrameworkError
from .logs import get_logger
from .runtime import Event

__all__ = ["TRACE_VERSION", "TraceFormatError", "ReplayDivergence", "TraceRecorder",
           "TraceReader", "Trace", "read_trace", "event_record"]

log = get_logger()
TRACE_VERSION = 1
DIRECTIONS = ("in", "out")
KINDS = ("request", "reply", "message", "state", "error")
DEFAULT_FLUSH_EVERY = 256
DEFAULT_FLUSH_INTERVAL_S = 1.0
_BASE_KEYS = ("t", "dir", "kind", "name", "workflow_id")


def _json_line_encoder():
    """One-line JSON, ASCII only (no line separator can hide in a string), no NaN.

    The C encoder is called directly: `json.JSONEncoder.encode` builds a new one per call,
    which costs more than encoding a small event.
    """
    make_encoder = json.encoder.c_make_encoder
    if make_encoder is None:  # not CPython
        return json.JSONEncoder(ensure_ascii=True, allow_nan=False, separators=(",", ":"),
                                check_circular=False).encode

    def refuse(value: Any) -> Any:
        raise TypeError(f"not JSON: {type(value).__qualname__}")

    encode = make_encoder(None, refuse, json.encoder.encode_basestring_ascii, None, ":", ",",
                          False, False, False)
    return lambda value: "".join(encode(value, 0))


_line = _json_line_encoder()
_string = json.encoder.encode_basestring_ascii


class TraceFormatError(ServiceFrameworkError, ValueError):
    """A trace file cannot be read; the message names the file and the line."""

    def __init__(self, message: str, *, path: str | os.PathLike | None = None,
                 line: int | None = None) -> None:
        self.path = os.fspath(path) if path is not None else None
        self.line = line
        where = ":".join(str(part) for part in (self.path, line) if part is not None)
        super().__init__(f"{where}: {message}" if where else message)


# --------------------------------------------------------------------------- events
# The real datetime and date classes. In a tuple, because freezegun replaces module
# attributes that are these classes while time is frozen (the harness freezes it), and
# from `min`, which is an instance of the real class even then.
_REAL = (type(datetime.min), type(date.min))


def _plain(value: Any) -> Any:
    """`value` with datetime/date subclasses (freezegun's FakeDatetime) as the real types."""
    cls = value.__class__
    if cls is dict:
        return {_plain(key): _plain(item) for key, item in value.items()}
    if cls in (list, tuple, set, frozenset):
        return cls(_plain(item) for item in value)
    real_datetime, real_date = _REAL
    if cls is not real_datetime and isinstance(value, real_datetime):
        return real_datetime(value.year, value.month, value.day, value.hour, value.minute,
                             value.second, value.microsecond, value.tzinfo, fold=value.fold)
    if cls is not real_date and isinstance(value, real_date) and not isinstance(
            value, real_datetime):
        return real_date(value.year, value.month, value.day)
    return value


def _tagged(value: Any) -> Any:
    """`tagged_json.to_jsonable`; what JSON cannot hold at all is kept as its repr.

    Only external targets see values that never crossed the codec: recording must not
    stop the service for them.
    """
    try:
        return tagged_json.to_jsonable(_plain(value))
    except (TypeError, ValueError, RecursionError):
        if isinstance(value, dict):
            return {"$map": [[_tagged(k), _tagged(v)] for k, v in value.items()]}
        if isinstance(value, (list, tuple)):
            return [_tagged(item) for item in value]
        return f"<unrepresentable {type(value).__qualname__}: {value!r}>"


def event_record(event: Event, t: float | None = None) -> dict:
    """The JSON-ready form of an event, the shape of one trace line."""
    record = {"t": round(event.t if t is None else t, 6), "dir": event.dir, "kind": event.kind,
              "name": event.name, "workflow_id": event.workflow_id}
    for key, value in event.payload.items():
        record[key] = _tagged(value)
    return record


_int = int.__repr__
_float = float.__repr__
_heads: dict[tuple[str, str, str], str] = {}
_keys: dict[str, str] = {}  # '"key":' of the keys seen, up to _MAX_KEYS of them
_MAX_KEYS = 4096


def _key(key: str) -> str:
    text = _keys.get(key)
    if text is None:
        text = _string(key) + ":"
        if len(_keys) < _MAX_KEYS:
            _keys[key] = text
    return text


def _json(value: Any) -> str:
    """JSON text of `value` in tagged form, as `tagged_json` writes it.

    On the hot path of every message: the common shapes (dicts with str keys holding str,
    int, bool, None, finite floats, Decimals and datetimes) are written here directly;
    anything else goes through `tagged_json.to_jsonable`.
    """
    cls = value.__class__
    if cls is dict:
        parts = []
        key = ""
        for key, item in value.items():
            if key.__class__ is not str:
                return _line(_tagged(value))
            kind = item.__class__
            if kind is str:
                text = _string(item)
            elif kind is int:
                text = _int(item)
            elif kind is Decimal:
                text = '{"$decimal":"' + str(item) + '"}'
            elif kind is _REAL[0]:
                text = '{"$datetime":"' + item.isoformat() + '"}'
            elif kind is bool:
                text = "true" if item else "false"
            elif item is None:
                text = "null"
            elif kind is float and item - item == 0.0:
                text = _float(item)
            else:
                text = _json(item)
            parts.append((_keys.get(key) or _key(key)) + text)
        if len(parts) == 1 and key[:1] == "$":  # tagged_json escapes it: never a tag
            return _line(_tagged(value))
        return "{" + ",".join(parts) + "}"
    if cls is str:
        return _string(value)
    if cls is int:
        return _int(value)
    if cls is list:
        return "[" + ",".join([_json(item) for item in value]) + "]"
    return _line(_tagged(value))


def event_line(event: Event, t: float, payload: Mapping | None = None) -> str:
    """One trace line (without its newline): `event_record` as JSON, built for speed.

    `payload`, when given, stands for `event.payload` (the recorder's snapshot of it).
    """
    head = _heads.get((event.dir, event.kind, event.name))
    if head is None:
        head = _heads.setdefault((event.dir, event.kind, event.name), (
            f',"dir":{_string(event.dir)},"kind":{_string(event.kind)},'
            f'"name":{_string(event.name)},"workflow_id":'))
    parts = ['{"t":', _float(round(t, 6)), head, _string(event.workflow_id)]
    for key, value in (event.payload if payload is None else payload).items():
        parts.append("," + _string(key) + ":" + _json(value))
    parts.append("}")
    return "".join(parts)


_IMMUTABLE = frozenset({str, int, float, bool, type(None), Decimal, _REAL[0], bytes})


def _snapshot(value: Any) -> Any:
    """A copy of the containers in `value` that the service could still change."""
    cls = value.__class__
    if cls is dict:
        return {key: item if item.__class__ in _IMMUTABLE else _snapshot(item)
                for key, item in value.items()}
    if cls is list:
        return [item if item.__class__ in _IMMUTABLE else _snapshot(item) for item in value]
    if cls is set:
        return set(value)
    if cls is tuple:
        return tuple(item if item.__class__ in _IMMUTABLE else _snapshot(item)
                     for item in value)
    if isinstance(value, (dict, list, set)):  # subclasses: as on the wire, the base type
        return _snapshot(dict(value) if isinstance(value, dict) else
                         list(value) if isinstance(value, list) else set(value))
    return value


def safe_config(config: Mapping) -> dict:
    """The config without secrets: no `security` section, no key that contains 'secret'."""
    def clean(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {key: clean(item) for key, item in value.items()
                    if not (isinstance(key, str) and ("secret" in key.lower()
                                                      or key == "security"))}
        return value

    return clean(dict(config))


# --------------------------------------------------------------------------- writing
class TraceRecorder:
    """Writes a service's events to a trace file, in whole-line batches; thread-safe.

    Use `attach(runtime, path)`; `close()` writes what is buffered and stops listening.
    `record` only keeps a snapshot of the event; every `flush_every` events (or once
    `flush_interval_s` passed) the batch is converted to JSON and written with one
    `os.write`, in the thread that recorded the event that filled it (a writer thread was
    measured: the GIL hand-offs cost more than it saved). In ``append`` mode an existing
    trace is continued (its header kept, a torn last line cut off), with ``t`` going on
    from its last event.
    """

    def __init__(self, path: str | os.PathLike, *, service: str, started: datetime | str,
                 start: float = 0.0, seed: int | None = None, extra: Mapping | None = None,
                 append: bool = False, flush_every: int = DEFAULT_FLUSH_EVERY,
                 flush_interval_s: float = DEFAULT_FLUSH_INTERVAL_S) -> None:
        if flush_every < 1:
            raise ValueError(f"flush_every must be >= 1, got {flush_every}")
        self.path = Path(path)
        self.service = service
        self.flush_every = flush_every
        self.flush_interval_s = flush_interval_s
        self.written = 0  # events written to the file so far
        self.runtime: Any = None
        self._lock = threading.Lock()  # the buffer
        self._write_lock = threading.Lock()  # batches are taken and written in order
        self._buffer: list[tuple[Event, float, dict]] = []
        self._unwritten = b""
        self._last_flush = start
        self._closed = False
        offset = 0.0
        if append and self.path.exists() and self.path.stat().st_size:
            offset = _prepare_append(self.path)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            header: dict[str, Any] = {"trace": TRACE_VERSION, "service": service,
                                      "started": started if isinstance(started, str)
                                      else started.isoformat()}
            if seed is not None:
                header["seed"] = seed
            for key, value in (extra or {}).items():
                header[key] = _tagged(value)
            self._write((_line(header) + "\n").encode("ascii"))
        self.start = start - offset

    @classmethod
    def attach(cls, runtime: Any, path: str | os.PathLike, *, seed: int | None = None,
               append: bool = False, **options: Any) -> "TraceRecorder":
        """Records every event of `runtime` from now on (its start too, if it has not opened)."""
        definition = runtime.definition
        extra = {"transport": runtime.transport.name, "main_mode": definition.main_mode,
                 "includes_start": not runtime.opened, "config": safe_config(runtime.config)}
        recorder = cls(path, service=runtime.name, started=runtime.clock.now(),
                       start=runtime.clock.monotonic(), seed=seed, extra=extra, append=append,
                       **options)
        recorder.runtime = runtime
        runtime.event_listeners.append(recorder.record)
        return recorder

    @property
    def events(self) -> int:
        """Events recorded so far (written, or waiting in the buffer)."""
        with self._lock:
            return self.written + len(self._buffer)

    def record(self, event: Event) -> None:
        """One event (a runtime event listener): cheap, and never raises into the service.

        The event is kept with a snapshot of its payload (dicts, lists and sets copied, so
        later changes by the service do not reach the trace); converting it to JSON waits
        for its batch.
        """
        if self._closed:
            return
        payload = event.payload
        for value in payload.values():
            if value.__class__ not in _IMMUTABLE:
                payload = {key: _snapshot(item) for key, item in payload.items()}
                break
        with self._lock:
            buffer = self._buffer
            buffer.append((event, event.t - self.start, payload))
            if (len(buffer) < self.flush_every
                    and event.t - self._last_flush < self.flush_interval_s):
                return
            self._last_flush = event.t
        self.flush()

    def flush(self) -> None:
        """Writes everything recorded so far, in this thread, as whole lines."""
        with self._write_lock:  # taken and written in one go: batches stay in order
            self._flush_batch()

    def _flush_batch(self) -> None:
        with self._lock:
            batch, self._buffer = self._buffer, []
        if self._fd < 0:  # closed: a late event of a racing thread is dropped
            return
        lines = []
        for event, t, payload in batch:
            try:
                lines.append(event_line(event, t, payload))
            except Exception:  # noqa: BLE001 - a recorder bug must not break the service
                log.exception("trace %s: cannot record a %s %s event of %r", self.path,
                              event.dir, event.kind, event.name)
        if lines:
            self.written += len(lines)
            lines.append("")
            self._write("\n".join(lines).encode("ascii"))

    def _write(self, data: bytes) -> None:
        # One os.write per batch (no Python-side buffer that a crash could leave half
        # written); anything a short write left over goes first next time.
        data = self._unwritten + data if self._unwritten else data
        view = memoryview(data)
        done = 0
        try:
            while done < len(view):
                done += os.write(self._fd, view[done:])
        finally:
            self._unwritten = bytes(view[done:])

    def close(self) -> None:
        """Writes everything recorded and stops listening; idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        runtime = self.runtime
        if runtime is not None and self.record in runtime.event_listeners:
            runtime.event_listeners.remove(self.record)
        with self._write_lock:
            try:
                self._flush_batch()
            finally:
                os.close(self._fd)
                self._fd = -1

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> "TraceRecorder":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _prepare_append(path: Path) -> float:
    """Cuts a torn last line off an existing trace; returns the `t` of its last event."""
    with open(path, "r+b") as file:
        size = file.seek(0, os.SEEK_END)
        tail_start = max(0, size - 65536)
        file.seek(tail_start)
        tail = file.read()
        if not tail.endswith(b"\n"):
            cut = tail.rfind(b"\n")
            if cut < 0 and tail_start == 0:
                raise TraceFormatError("no complete header line to append to", path=path,
                                       line=1)
            file.truncate(tail_start + cut + 1)
            tail = tail[:cut + 1]
    last = tail.rstrip(b"\n").rpartition(b"\n")[2]
    try:
        record = json.loads(last)
    except ValueError:
        return 0.0
    t = record.get("t") if isinstance(record, dict) else None
    return float(t) if isinstance(t, (int, float)) and not isinstance(t, bool) else 0.0


# --------------------------------------------------------------------------- reading
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
        missing = [key for key in _BASE_KEYS if key not in record]
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
                       if key not in _BASE_KEYS}
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


# --------------------------------------------------------------------------- divergence
def _pretty(record: dict | None) -> str:
    return "(nothing)" if record is None else json.dumps(record, ensure_ascii=False)


class ReplayDivergence(AssertionError):
    """A replay sent something other than the recording at event `index` (0-based).

    `expected` and `actual` are trace records (dicts in trace-line form, without ``t``), or
    None for "nothing": the recording expected nothing more, or the service sent nothing.
    """

    def __init__(self, index: int, expected: dict | None, actual: dict | None,
                 reason: str = "", *, path: str | None = None, line: int | None = None) -> None:
        self.index = index
        self.expected = expected
        self.actual = actual
        self.reason = reason
        self.path = path
        self.line = line
        super().__init__(self._message())

    def _message(self) -> str:
        where = f" ({self.path}, line {self.line})" if self.path and self.line else ""
        lines = [f"replay diverged at event {self.index}{where}"
                 + (f": {self.reason}" if self.reason else ""),
                 f"  expected: {_pretty(self.expected)}",
                 f"  actual:   {_pretty(self.actual)}"]
        if self.expected is not None and self.actual is not None:
            diff = difflib.unified_diff(
                json.dumps(self.expected, indent=2, ensure_ascii=False).splitlines(),
                json.dumps(self.actual, indent=2, ensure_ascii=False).splitlines(),
                "expected", "actual", n=1, lineterm="")
            lines.append("  diff:")
            lines.extend(f"    {line}" for line in diff)
        return "\n".join(lines)

    def __reduce__(self):
        return (_rebuild_divergence, (self.index, self.expected, self.actual, self.reason,
                                      self.path, self.line))


def _rebuild_divergence(index, expected, actual, reason, path, line) -> ReplayDivergence:
    return ReplayDivergence(index, expected, actual, reason, path=path, line=line)
