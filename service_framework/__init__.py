"""service_framework: ZeroMQ microservices that can be tested deterministically."""

from .errors import ArgumentError, ConfigError, ModelError, RemoteError, RequestTimeout
from .logs import get_logger
from .service import Service

__all__ = ["Service", "get_logger", "ArgumentError", "ModelError", "ConfigError",
           "RequestTimeout", "RemoteError"]
