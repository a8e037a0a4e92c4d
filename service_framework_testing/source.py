"""`harness.state_source(state)`: a fake out side for one in-state of the service under test.

It is the stand-alone out side of `service_framework.states.standalone` — a real out-state
(heartbeats, snapshot replies, numbering, epochs) as a small service of its own at the
addresses the in-state connects to, on the harness's transport — with a valve: an update
may be lost, held back (a reordering) or sent again (a duplicate), so gaps, duplicates and
reordering show on ZeroMQ as on the memory bus.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

from service_framework.errors import ArgumentError
from service_framework.service import Service
from service_framework.states.out_state import OutState
from service_framework.states.standalone import out_side_definition
from service_framework.transport.base import Frames
from service_framework.transport.clocks import WallClock

if TYPE_CHECKING:
    from .harness import ServiceHarness

SETTLE_TIMEOUT_S = 10.0


class StateSource:
    """Pushes snapshots, deltas, gaps, duplicates, reordering and restarts to one in-state."""

    def __init__(self, harness: "ServiceHarness", state: str, *,
                 heartbeat_s: float | None = None) -> None:
        self.harness = harness
        self.state = state
        in_state = harness.runtime.in_states.get(state)
        if in_state is None:
            raise ArgumentError(f"service {harness.name!r} has no in-state {state!r}")
        self._definition = out_side_definition(in_state, name=f"{harness.name}_{state}_source",
                                               heartbeat_s=heartbeat_s)
        self.heartbeat_s = self._definition.states[("out", state)].creation["heartbeat_s"]
        self.held: list[Frames] = []  # updates held back until the next one passes
        self.last_update: Frames | None = None
        self.service: Service | None = None
        self._start()

    def _start(self) -> None:
        self.service = Service.from_definition(self._definition, transport=self.harness.transport)
        self.service.run_service()

    @property
    def component(self) -> OutState:
        return self.service.runtime.out_states[self.state]

    @property
    def value(self) -> dict:
        """The out side's value: what the in-state must converge to."""
        return copy.deepcopy(self.component.value)

    @property
    def seq(self) -> int:
        return self.component.seq

    # -- updates --------------------------------------------------------------------------
    def update(self, args: dict, *, is_snapshot: bool = False, settle: bool = True) -> None:
        """Applies and publishes one update, as the real out side would; what `hold` kept
        back follows it."""
        self.last_update = self._apply(args, is_snapshot)
        self.component.send_frames(self.last_update)
        self.release(settle=settle)

    def lose(self, args: dict, *, is_snapshot: bool = False, settle: bool = True) -> None:
        """Applies an update but loses it on the way: the in side sees a gap later."""
        self.last_update = self._apply(args, is_snapshot)
        if settle and self.harness.on_memory:  # on ZeroMQ nothing shows until later
            self.catch_up()

    def hold(self, args: dict, *, is_snapshot: bool = False) -> None:
        """Applies an update and holds it back until the next one passes (a reordering)."""
        self.last_update = self._apply(args, is_snapshot)
        self.held.append(self.last_update)

    def repeat_last(self, *, settle: bool = True) -> None:
        """Sends the last update again (a duplicate)."""
        if self.last_update is not None:
            self.component.send_frames(self.last_update)
        if settle:
            self.catch_up()

    def release(self, *, settle: bool = True) -> None:
        """Sends whatever `hold` kept back."""
        held, self.held = self.held, []
        for frames in held:
            self.component.send_frames(frames)
        if settle:
            self.catch_up()

    def _apply(self, args: dict, is_snapshot: bool) -> Frames:
        payload = {**args, "is_snapshot": True} if is_snapshot else args
        return self.component.publish(payload, self.service.runtime.new_workflow_id(),
                                      send=False)

    def restart(self) -> None:
        """Stops the out side and starts it again: a new epoch, numbers from the start."""
        self.service.stop_service()
        self.held.clear()
        self.last_update = None
        self._start()
        self.harness.settle()

    # -- waiting ----------------------------------------------------------------------------
    def catch_up(self, *, past_heartbeat: bool = False) -> None:
        """Lets the in side catch up; with `past_heartbeat`, also one heartbeat interval
        (and a snapshot round trip) later, so lost tail updates are recovered."""
        harness = self.harness
        if harness.on_memory:
            if past_heartbeat:
                harness.transport.advance(self.heartbeat_s * 2 + self._snapshot_timeout())
            else:
                harness.transport.run_until_idle()
            return
        self._wait(self._caught_up, SETTLE_TIMEOUT_S + (self.heartbeat_s * 2 if past_heartbeat
                                                         else 0.0))

    def _snapshot_timeout(self) -> float:
        return self.harness.runtime.in_states[self.state].snapshot_timeout_s

    def _caught_up(self) -> bool:
        in_state = self.harness.runtime.in_states[self.state]
        return in_state.synced and in_state.seq == self.seq and in_state.value == self.value

    def _wait(self, condition, timeout_s: float) -> None:
        clock = WallClock()
        deadline = clock.monotonic() + timeout_s
        poller = self.harness.transport.poller(owner="harness.source")
        try:
            while not condition() and clock.monotonic() < deadline:
                poller.poll(0.005)  # waits on nothing: a bounded pause between checks
        finally:
            poller.close()

    def close(self) -> None:
        if self.service is not None:
            self.service.stop_service()
            self.service = None
