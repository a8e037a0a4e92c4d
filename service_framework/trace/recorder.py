"""Writing a trace: `TraceRecorder` listens to a runtime and appends whole lines in batches."""

from __future__ import annotations

import json
import os
import threading
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Mapping

from ..config import redact_config
from ..errors import TraceFormatError
from ..events import Event
from ..logs import get_logger
from .format import TRACE_VERSION
from .lines import event_line, json_line, tagged
from .tagged_json import _Real

__all__ = ["TraceRecorder", "DEFAULT_FLUSH_EVERY", "DEFAULT_FLUSH_INTERVAL_S"]

log = get_logger()
DEFAULT_FLUSH_EVERY = 256
DEFAULT_FLUSH_INTERVAL_S = 1.0
_IMMUTABLE = frozenset({str, int, float, bool, type(None), Decimal, _Real.datetime, bytes})


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
                header[key] = tagged(value)
            self._write((json_line(header) + "\n").encode("ascii"))
        self.start = start - offset

    @classmethod
    def attach(cls, runtime: Any, path: str | os.PathLike, *, seed: int | None = None,
               append: bool = False, **options: Any) -> "TraceRecorder":
        """Records every event of `runtime` from now on (its start too, if it has not opened)."""
        definition = runtime.definition
        extra = {"transport": runtime.transport.name, "main_mode": definition.main_mode,
                 "includes_start": not runtime.opened, "config": redact_config(
                     runtime.config, runtime.definition.secret_config_keys)}
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

