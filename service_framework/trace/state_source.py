"""The fake out side that feeds a replay's recorded ``in state`` updates to an in-state.

A replay must speak the state protocol to the in-state exactly as a real out side did, so
this runs the real `OutState` on a `Runtime` of its own (the one place in the trace
package that builds a runtime).
"""

from __future__ import annotations

import dataclasses
import types
from typing import Any

from ..events import Event
from ..loader import ServiceDefinition
from ..runtime import Runtime
from ..states.merge import copy_value, replace_value

__all__ = ["RecordedStateSource"]


class RecordedStateSource:
    """A fake out side of one in-state: the real `OutState` on a runtime of its own.

    Bound at the first recorded update of the state (so the in-state's pending snapshot
    request is answered with that update's value, as it was when recording), it then
    publishes each recorded update with its recorded seq, heartbeats and serves snapshots.
    """

    def __init__(self, bus: Any, in_state: Any) -> None:
        self.bus = bus
        self.in_state = in_state
        self.runtime: Any = None

    def _open(self) -> Runtime:
        spec = self.in_state.spec
        out_type = "full_update_out" if spec.kind == "full" else "delta_update_out"
        creation = {"topic": self.in_state.topic,
                    "heartbeat_s": float(spec.creation.get("heartbeat_s", 1.0))}
        out_spec = dataclasses.replace(spec, side="out", type=out_type, creation=creation,
                                       on_update=None)
        addresses = {"states": {"out": {spec.name: {
            "publisher": self.in_state.endpoints("subscriber", many=True)[0],
            "replyer": self.in_state.endpoints("requester", many=True)[0]}}}}
        definition = ServiceDefinition(
            name=f"replay-source-{spec.name}", module=types.ModuleType("replay_source"),
            config={}, addresses=addresses, connections={}, states={("out", spec.name): out_spec})
        return Runtime(definition, self.bus)

    def feed(self, event: Event) -> None:
        """Publishes one recorded ``in state`` update (the first one binds the source)."""
        args = event.payload.get("args") or {}
        is_snapshot = bool(event.payload.get("is_snapshot", False))
        seq = event.payload.get("seq")
        if self.runtime is None:
            self.runtime = runtime = self._open()
            out = runtime.out_states[self.in_state.name]
            seq = seq if isinstance(seq, int) and seq >= 0 else 1
            if is_snapshot:  # served as the answer to the in-state's snapshot request
                replace_value(out.core.value, copy_value(args))
                out.core.seq = seq
            else:
                out.core.seq = seq - 1
            runtime.open()
            self.bus.attach(runtime)
            if not is_snapshot:
                self._publish(out, args, False, event.workflow_id)
            return
        out = self.runtime.out_states[self.in_state.name]
        seq = seq if isinstance(seq, int) and seq > 0 else out.core.seq + 1
        if seq <= out.core.seq:
            # the recorded out side started again: a new epoch, from the bus's seed
            out.core.restart(self.runtime.new_workflow_id())
        out.core.seq = seq - 1
        self._publish(out, args, is_snapshot, event.workflow_id)

    @staticmethod
    def _publish(out: Any, args: dict, is_snapshot: bool, workflow_id: str) -> None:
        with out.lock:
            body = out.core.update(args, is_snapshot, workflow_id or None)
            out.publisher.send([out.topic, body])

    def close(self) -> None:
        """Detaches the fake out side from the bus and closes it."""
        if self.runtime is not None:
            self.bus.detach(self.runtime)
            self.runtime.close()
            self.runtime = None
