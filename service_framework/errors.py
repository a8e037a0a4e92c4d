"""The framework's error classes: each says what was expected, what was found, and where."""

from __future__ import annotations


class ServiceFrameworkError(Exception):
    """Base of every error the framework raises on purpose."""


class ArgumentError(ServiceFrameworkError, ValueError):
    """Arguments (config, message, return, to_send) do not match their model."""


class ModelError(ServiceFrameworkError):
    """A service's models or hooks are invalid; raised while loading, before anything binds."""


class ConfigError(ServiceFrameworkError):
    """The config, the addresses or the command line are invalid."""


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
