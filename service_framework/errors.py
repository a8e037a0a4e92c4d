"""The framework's error classes, all of them: each says what was expected, what was found,
and where.

One module, so that a caller finds every type it may catch in one place (and
`service_framework` exports each of them); the modules that raise them import them from
here. Nothing else lives here: how an error is written in a trace and raised again by a
replay is in `service_framework.events`.
"""

from __future__ import annotations

import difflib
import json
import os
from typing import Any


class ServiceFrameworkError(Exception):
    """Base of every error the framework raises on purpose."""


class ArgumentError(ServiceFrameworkError, ValueError):
    """Arguments (config, message, return, to_send) do not match their model."""


class ModelError(ServiceFrameworkError):
    """A service's models or hooks are invalid; raised while loading, before anything binds."""


class TypeFormError(ModelError):
    """A type form in a model cannot be used: `form` is the offending piece, `reason` why.

    Raised inside the type-form walk; loading reports it as a `ModelError` naming the place.
    """

    def __init__(self, form: object, reason: str) -> None:
        super().__init__(form, reason)
        self.form = form
        self.reason = reason


class ConfigError(ServiceFrameworkError):
    """The config, the addresses or the command line are invalid."""


class ConfigArgumentError(ConfigError, ArgumentError):
    """The config does not match `config_model`: a config error and an argument error."""


class ServiceStopping(ServiceFrameworkError):
    """The service is stopping: a send after its connections closed."""


class RequestTimeout(ServiceFrameworkError, TimeoutError):
    """A requester got no reply within its deadline (after every retry)."""


class RemoteError(ServiceFrameworkError):
    """The remote side answered a request with an error reply."""

    def __init__(self, remote_type: str, remote_message: str, connection: str = "") -> None:
        self.remote_type = remote_type
        self.remote_message = remote_message
        self.connection = connection
        where = f" from {connection!r}" if connection else ""
        super().__init__(f"remote error{where}: {remote_type}: {remote_message}")

    def __reduce__(self):  # keep pickling (pytest-xdist, multiprocessing) working
        return (RemoteError, (self.remote_type, self.remote_message, self.connection))


# -- the wire (SPEC §7, §8) -----------------------------------------------------------------
class CodecError(ServiceFrameworkError, ValueError):
    """A value cannot be encoded, or bytes cannot be decoded, by the wire codec."""


class EnvelopeError(ServiceFrameworkError, ValueError):
    """A body decoded but is not a valid envelope of this protocol version."""


class ProtocolError(ServiceFrameworkError, ValueError):
    """A body decoded but is not a state-protocol message of this version."""


# -- traces and replay (SPEC §12) -----------------------------------------------------------
class TraceFormatError(ServiceFrameworkError, ValueError):
    """A trace file cannot be read; the message names the file and the line."""

    def __init__(self, message: str, *, path: str | os.PathLike | None = None,
                 line: int | None = None) -> None:
        self.path = os.fspath(path) if path is not None else None
        self.line = line
        where = ":".join(str(part) for part in (self.path, line) if part is not None)
        super().__init__(f"{where}: {message}" if where else message)


class ReplayError(ServiceFrameworkError, ValueError):
    """A replay cannot start: no trace in record mode 'none', not on the memory bus, …"""


class ReplayDivergence(AssertionError):
    """A replay sent something other than the recording at event `index` (0-based).

    `expected` and `actual` are `Event`s, as in `Trace.events` (the recorded one, and the
    one the service sent), or None for "nothing": the recording expected nothing more, or
    the service sent nothing. `expected_record` and `actual_record` are what was compared:
    trace-line dicts without ``t`` or the workflow id, masked fields blanked.
    An `AssertionError` (not a `ServiceFrameworkError`): it fails a test like an assert.
    """

    def __init__(self, index: int, expected: Any, actual: Any, reason: str = "", *,
                 path: str | None = None, line: int | None = None,
                 records: tuple[dict | None, dict | None] = (None, None)) -> None:
        self.index = index
        self.expected = expected
        self.actual = actual
        self.expected_record, self.actual_record = records
        self.reason = reason
        self.path = path
        self.line = line
        super().__init__(self._message())

    def _message(self) -> str:
        where = f" ({self.path}, line {self.line})" if self.path and self.line else ""
        expected, actual = self.expected_record, self.actual_record
        lines = [f"replay diverged at event {self.index}{where}"
                 + (f": {self.reason}" if self.reason else ""),
                 f"  expected: {_one_line(expected)}",
                 f"  actual:   {_one_line(actual)}"]
        if expected is not None and actual is not None:
            diff = difflib.unified_diff(
                json.dumps(expected, indent=2, ensure_ascii=False).splitlines(),
                json.dumps(actual, indent=2, ensure_ascii=False).splitlines(),
                "expected", "actual", n=1, lineterm="")
            lines.append("  diff:")
            lines.extend(f"    {line}" for line in diff)
        return "\n".join(lines)

    def __reduce__(self):  # keep pickling working: the message is built from the fields
        return (_rebuild_divergence, (self.index, self.expected, self.actual, self.reason,
                                      self.path, self.line,
                                      (self.expected_record, self.actual_record)))


def _one_line(record: dict | None) -> str:
    """A compared record in a divergence message (pure formatting)."""
    return "(nothing)" if record is None else json.dumps(record, ensure_ascii=False)


def _rebuild_divergence(index, expected, actual, reason, path, line,
                        records) -> ReplayDivergence:
    return ReplayDivergence(index, expected, actual, reason, path=path, line=line,
                            records=records)


class InvariantViolation(AssertionError):
    """A simulated run broke an invariant (a built-in one or `sf_bus.invariant`): the message
    names the seed, the virtual time, the service and the message or value concerned."""


class ServiceCrashed(BaseException):
    """Unwinds the code of a service that a fault plan crashed under it on the memory bus: a
    handler waiting on a request, a timer, or `main` (a test's `run_main()` raises it). A
    BaseException, so a handler's `except Exception` does not swallow it; the bus ends the
    crashed service's step quietly."""

    def __init__(self, owner: str) -> None:
        super().__init__(f"service {owner.partition('.')[0]!r} crashed (a fault plan's "
                         f"crash) while its code was running; {owner} is closed")
        self.owner = owner
