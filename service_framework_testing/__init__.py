"""service_framework_testing: the words to test a service — harness, bus, faults, replay."""

from service_framework.errors import ReplayDivergence
from service_framework.events import Sent

from .harness import ServiceHarness

__all__ = ["ServiceHarness", "Sent", "replay_delta_stream", "ReplayDivergence"]


def __getattr__(name: str):
    # Imported on first use: it needs the states modules.
    if name == "replay_delta_stream":
        from .delta import replay_delta_stream

        return replay_delta_stream
    raise AttributeError(name)
