"""The fake out side that feeds a replay's recorded ``in state`` updates to an in-state.

A replay must speak the state protocol to the in-state exactly as the real out side did: it
runs the stand-alone out side (`service_framework.states.standalone`) on a `Runtime` of its
own on the replay's bus, publishing each recorded update with its recorded seq.
"""

from __future__ import annotations

from typing import Any

from ..events import Event
from ..runtime import Runtime
from ..states.in_state import InState
from ..states.standalone import out_side_definition

__all__ = ["RecordedStateSource"]


class RecordedStateSource:
    """A fake out side of one in-state, started at its first recorded update (so the
    in-state's pending snapshot request is answered with that update's value, as it was
    when recording); then each recorded update is published with its recorded seq."""

    def __init__(self, bus: Any, in_state: InState) -> None:
        self.bus = bus
        self.in_state = in_state
        self.runtime: Runtime | None = None

    def feed(self, event: Event) -> None:
        """Publishes one recorded ``in state`` update (the first one starts the source)."""
        args = event.payload.get("args") or {}
        if event.payload.get("is_snapshot", False):
            args = {**args, "is_snapshot": True}
        seq = event.payload.get("seq")
        workflow_id = event.workflow_id or None
        if self.runtime is None:
            name = self.in_state.name
            self.runtime = runtime = Runtime(
                out_side_definition(self.in_state, name=f"replay-source-{name}"), self.bus)
            out = runtime.out_states[name]
            first = seq if isinstance(seq, int) and seq >= 0 else 1
            if args.get("is_snapshot"):  # applied before the socket opens: the snapshot reply
                out.publish(args, workflow_id, seq=first, send=False)
            else:
                out.core.seq = first - 1
            runtime.open()
            self.bus.scheduler.start(runtime)
            if not args.get("is_snapshot"):
                out.publish(args, workflow_id)
            return
        out = self.runtime.out_states[self.in_state.name]
        seq = seq if isinstance(seq, int) and seq > 0 else out.seq + 1
        if seq <= out.seq:
            # the recorded out side started again: a new epoch, from the bus's seed
            out.core.restart(self.runtime.new_workflow_id())
        out.publish(args, workflow_id, seq=seq)

    def close(self) -> None:
        """Stops the fake out side and closes it."""
        if self.runtime is not None:
            self.bus.scheduler.forget(self.runtime)
            self.runtime.close()
            self.runtime = None
