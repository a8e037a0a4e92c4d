"""service_framework_testing: the words to test a service — harness, bus, faults, replay."""

from service_framework.runtime import Sent

from .harness import ServiceHarness

__all__ = ["ServiceHarness", "Sent", "replay_delta_stream", "ReplayDivergence"]


def __getattr__(name: str):
    # Imported on first use: they need the states and trace modules.
    if name == "replay_delta_stream":
        from .delta import replay_delta_stream

        return replay_delta_stream
    if name == "ReplayDivergence":
        from service_framework.trace import ReplayDivergence

        return ReplayDivergence
    raise AttributeError(name)
