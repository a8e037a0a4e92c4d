"""The memory transport: a deterministic, single-threaded bus with virtual time.

It keeps the ZMQ semantics a service can observe while a seed fixes every choice (which
service steps next, which message a fault hits) and a virtual clock drives every deadline.
Services are stepped by the bus, never by threads of their own. Its jobs, one module each:
`bus` (the transport: sockets, linking, delivery), `sockets`, `scheduler` (who steps
next), `log` (the delivery log); the clocks are in `transport.clocks`.
"""

from ..clocks import DEFAULT_START, VirtualClock, WallClock
from .bus import MemoryBus, default_bus
from .log import DeliveryLog
from .scheduler import BusScheduler
from .sockets import MemoryPoller, MemorySocket

__all__ = ["MemoryBus", "MemorySocket", "MemoryPoller", "BusScheduler", "DeliveryLog",
           "VirtualClock", "WallClock", "DEFAULT_START", "default_bus"]
