"""What crosses a service's edge, as plain records: `Event`, `Sent`, and recorded errors.

The runtime emits these; traces, replays and the test harness read them. They live here,
below the runtime, so that reading or writing a trace never needs the runtime itself.

How an exception that an out connection raises to the service is recorded in an ``in
error`` event (SPEC §12), and raised again by a replay: an error *reply* is recorded as it
came over the wire, ``{"type", "message"}`` of the remote side, and is replayed as the
`RemoteError` the requester raised for it. An exception raised on this side (a requester's
`RequestTimeout`, whatever an external target or a stub raised) is marked ``"raised":
true``; a replay raises the framework's own errors again as they were (`RequestTimeout`,
and `RemoteError` with its remote type, message and connection) and any other type as a
`RemoteError` carrying the recorded type and message: a trace names a class, and a replay
never imports or builds arbitrary classes from a file. (A handler that catches such a
class, `KeyError` say, takes another path in the replay, which reports it.)
"""

from __future__ import annotations

import copy
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, NamedTuple
from uuid import UUID

from .errors import RemoteError, RequestTimeout, ServiceFrameworkError

__all__ = ["Event", "Sent", "error_record", "recorded_error"]


class Event(NamedTuple):
    """One thing that crossed the service's edge, for traces and the harness outbox."""

    t: float
    dir: str  # 'in' or 'out'
    kind: str  # 'request', 'reply', 'message', 'state', 'error'
    name: str
    workflow_id: str
    payload: dict


class Sent(NamedTuple):
    """One `to_send` call: what the service sent and, for requests, what came back."""

    output_type: str
    output_name: str
    args: dict
    reply: dict | None = None


def error_record(error: BaseException) -> dict:
    """The ``error`` of the ``in error`` event for `error`, raised on this side."""
    record = {"type": type(error).__name__, "message": str(error), "raised": True}
    if isinstance(error, RemoteError):
        record.update(remote_type=error.remote_type, remote_message=error.remote_message,
                      connection=error.connection)
    return record


def recorded_error(record: dict, connection: str) -> ServiceFrameworkError:
    """The exception to raise again for a recorded ``in error`` of out `connection`."""
    error_type, message = str(record.get("type", "Error")), str(record.get("message", ""))
    if record.get("raised") is True:
        if error_type == "RequestTimeout":
            return RequestTimeout(message)
        if error_type == "RemoteError" and "remote_type" in record:
            return RemoteError(str(record["remote_type"]), str(record.get("remote_message", "")),
                               str(record.get("connection", "")))
    return RemoteError(error_type, message, connection)


def copy_args(value: Any) -> Any:
    """A copy of arguments as sent, for the outbox: every dict, list and set is new, other
    values (str, numbers, Decimal, datetime, …: immutable) are shared. A handler that reuses
    one dict for several sends must not rewrite what the outbox shows was sent; this is
    `copy.deepcopy` for the codec's types, several times faster on the hot path."""
    kind = value.__class__
    if kind is dict:
        return {key: copy_args(item) for key, item in value.items()}
    if kind is list:
        return [copy_args(item) for item in value]
    if kind is set:
        return set(value)
    if kind in _ATOMS:
        return value
    return copy.deepcopy(value)


_ATOMS = frozenset({str, int, float, bool, bytes, type(None), Decimal, datetime, date, time,
                    timedelta, UUID, frozenset})
