"""service_framework: ZeroMQ microservices that can be tested deterministically."""

from .errors import (
    ArgumentError,
    CodecError,
    ConfigArgumentError,
    ConfigError,
    EnvelopeError,
    InvariantViolation,
    ModelError,
    ProtocolError,
    RemoteError,
    ReplayDivergence,
    ReplayError,
    RequestTimeout,
    ServiceCrashed,
    ServiceFrameworkError,
    ServiceStopping,
    TraceFormatError,
    TypeFormError,
)
from .logs import get_logger
from .service import Service
from .wire.forms import AnyDecimal, Secret

__all__ = ["Service", "get_logger", "AnyDecimal", "Secret", "ArgumentError", "ModelError",
           "ConfigError",
           "RequestTimeout", "RemoteError", "ServiceFrameworkError", "ConfigArgumentError",
           "ServiceStopping", "CodecError", "EnvelopeError", "ProtocolError",
           "TraceFormatError", "TypeFormError", "ReplayError", "ReplayDivergence",
           "InvariantViolation", "ServiceCrashed"]
