"""`harness.state_source(state)`: a fake out side for one in-state of the service under test.

It is a real out-state (heartbeats, snapshot replies, numbering, epochs) running as a
small service of its own at the addresses the in-state connects to, on the harness's
transport. A valve on its publisher socket lets a test lose, hold back (reorder) or repeat
updates, so gaps, duplicates and reordering are shown on ZMQ as on the memory bus.
"""

from __future__ import annotations

import copy
import types
from typing import TYPE_CHECKING, Any

from service_framework.errors import ArgumentError
from service_framework.loader import load_service
from service_framework.service import Service
from service_framework.states import protocol
from service_framework.states.out_state import DEFAULT_HEARTBEAT_S
from service_framework.transport.base import Frames, Socket

if TYPE_CHECKING:
    from .harness import ServiceHarness

SETTLE_TIMEOUT_S = 10.0


class _Valve(Socket):
    """Wraps the out-state's publisher: updates may be lost, held back or sent again."""

    def __init__(self, socket: Socket) -> None:
        self.socket = socket
        self.kind = socket.kind
        self.owner = socket.owner
        self.next_action = "pass"  # for the next update only: 'pass', 'drop' or 'hold'
        self.held: list[Frames] = []
        self.last_update: Frames | None = None

    def send(self, frames: Frames) -> bool:
        if not isinstance(protocol.decode_message(frames[1]), protocol.Update):
            return self.socket.send(frames)  # heartbeats always pass
        action, self.next_action = self.next_action, "pass"
        self.last_update = frames
        if action == "drop":
            return True
        if action == "hold":
            self.held.append(frames)
            return True
        sent = self.socket.send(frames)
        self.release()
        return sent

    def release(self) -> None:
        held, self.held = self.held, []
        for frames in held:
            self.socket.send(frames)

    def bind(self, endpoint: str) -> str:
        return self.socket.bind(endpoint)

    def connect(self, endpoint: str) -> None:
        self.socket.connect(endpoint)

    def recv(self) -> Frames | None:
        return self.socket.recv()

    def subscribe(self, topic: bytes) -> None:
        self.socket.subscribe(topic)

    def close(self) -> None:
        self.socket.close()

    @property
    def closed(self) -> bool:
        return self.socket.closed


class StateSource:
    """Pushes snapshots, deltas, gaps, duplicates, reordering and restarts to one in-state."""

    def __init__(self, harness: "ServiceHarness", state: str, *,
                 heartbeat_s: float | None = None) -> None:
        self.harness = harness
        self.state = state
        in_state = harness.runtime.in_states.get(state)
        if in_state is None:
            raise ArgumentError(f"service {harness.name!r} has no in-state {state!r}")
        spec = in_state.spec
        self.heartbeat_s = heartbeat_s or float(
            spec.creation.get("heartbeat_s", DEFAULT_HEARTBEAT_S))
        module = types.ModuleType(f"{harness.name}_{state}_source")
        module.state_models = {"out": {state: {
            "state_type": "delta_update_out" if spec.kind == "delta" else "full_update_out",
            "required_arguments": dict(spec.value.required),
            "optional_arguments": dict(spec.value.optional),
            "required_creation_arguments": {"heartbeat_s": self.heartbeat_s,
                                            **({"topic": spec.creation["topic"]}
                                               if "topic" in spec.creation else {})},
        }}}
        self._addresses = {"states": {"out": {state: {
            "publisher": in_state.endpoints("subscriber", many=True)[0],
            "replyer": in_state.endpoints("requester", many=True)[0],
        }}}}
        self._module = module
        self.service: Service | None = None
        self.valve: _Valve | None = None
        self._start()

    def _start(self) -> None:
        definition = load_service(self._module, addresses=self._addresses)
        self.service = Service.from_definition(definition, transport=self.harness.transport)
        self.service.runtime_listeners.append(self._fit_valve)
        self.service.run_service()

    def _fit_valve(self, runtime: Any) -> None:
        component = runtime.out_states[self.state]
        original_open = component.open

        def open_with_valve() -> None:
            original_open()
            self.valve = _Valve(component.publisher)
            component.publisher = self.valve

        component.open = open_with_valve

    @property
    def component(self):
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
        """Applies and publishes one update, as the real out side would."""
        self._send(args, is_snapshot, "pass", settle)

    def lose(self, args: dict, *, is_snapshot: bool = False, settle: bool = True) -> None:
        """Applies an update but loses it on the way: the in side sees a gap later."""
        self._send(args, is_snapshot, "drop", settle)

    def hold(self, args: dict, *, is_snapshot: bool = False) -> None:
        """Applies an update and holds it back until the next one passes (a reordering)."""
        self._send(args, is_snapshot, "hold", settle=False)

    def repeat_last(self, *, settle: bool = True) -> None:
        """Sends the last update again (a duplicate)."""
        if self.valve.last_update is not None:
            with self.component.lock:
                self.valve.socket.send(self.valve.last_update)
        if settle:
            self.settle()

    def release(self, *, settle: bool = True) -> None:
        """Sends whatever `hold` kept back."""
        with self.component.lock:
            self.valve.release()
        if settle:
            self.settle()

    def _send(self, args: dict, is_snapshot: bool, action: str, settle: bool) -> None:
        payload = dict(args)
        if is_snapshot:
            payload["is_snapshot"] = True
        self.valve.next_action = action
        self.service.runtime.to_send("state", self.state, payload)
        if settle and (action == "pass" or self.harness.on_memory):
            self.settle()  # on ZMQ a lost update is only noticed later: nothing to wait for

    def restart(self) -> None:
        """Stops the out side and starts it again: a new epoch, numbers from the start."""
        self.service.stop_service()
        self._start()
        self.harness.settle()

    # -- waiting ----------------------------------------------------------------------------
    def settle(self, *, past_heartbeat: bool = False) -> None:
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
        from service_framework.transport.clocks import WallClock as SystemClock

        clock = SystemClock()
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
