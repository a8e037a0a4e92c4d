"""service_framework_testing: the words to test a service — harness, bus, faults, replay."""

from service_framework.errors import ReplayDivergence, ServiceCrashed
from service_framework.events import Sent

from .bus import TestBus, memory_bus
from .delta import replay_delta_stream
from .faults import FaultRule, Faults
from .faulty import FaultyTransport
from .harness import ServiceHarness

__all__ = ["ServiceHarness", "Sent", "replay_delta_stream", "ReplayDivergence", "Faults",
           "FaultRule", "FaultyTransport", "memory_bus", "TestBus", "ServiceCrashed"]
