"""The framework's error classes: each says what was expected, what was found, and where.

Also how an error an out connection raises is written in a trace, and raised again by a
replay (`error_record`, `recorded_error`).
"""

from __future__ import annotations


class ServiceFrameworkError(Exception):
    """Base of every error the framework raises on purpose."""


class ArgumentError(ServiceFrameworkError, ValueError):
    """Arguments (config, message, return, to_send) do not match their model."""


class ModelError(ServiceFrameworkError):
    """A service's models or hooks are invalid; raised while loading, before anything binds."""


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


# How an exception that an out connection raises to the service is recorded in an ``in
# error`` event (SPEC §12), and raised again by a replay. An error *reply* is recorded as it
# came over the wire, ``{"type", "message"}`` of the remote side, and is replayed as the
# `RemoteError` the requester raised for it. An exception raised on this side (a requester's
# `RequestTimeout`, whatever an external target or a stub raised) is marked ``"raised":
# true``; a replay raises the framework's own errors again as they were (`RequestTimeout`,
# and `RemoteError` with its remote type, message and connection) and any other type as a
# `RemoteError` carrying the recorded type and message: a trace names a class, and a
# replay never imports or builds arbitrary classes from a file. (A handler that catches
# such a class, `KeyError` say, takes another path in the replay, which reports it.)
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
