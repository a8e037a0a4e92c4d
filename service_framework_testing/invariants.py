"""The invariants every simulated run is checked against, with no line of test code.

- Every request ends in a reply, a `RemoteError` or a `RequestTimeout` within its timeout
  and retries (`requests`).
- No handler, hook or `main` raised — an exception the loop logged and survived — unless
  the test expects it (`sf_bus.expect_errors(KeyError, "over the limit", …)`) (`errors`).
- Once faults have healed and the bus has settled, every in-state equals its out-state
  and is in sync (`states`).
- The bus delivers nothing that was not sent, and keeps each link's order except where a
  duplicate, reorder or delay fault acted on it (`links`).
- The test's own: `sf_bus.invariant(fn)`, called after every delivery with the bus; it
  raises (or returns False) when the world is wrong. It costs one Python call per
  delivered message, plus what `fn` does: keep it to reading values.

Each failure is an `InvariantViolation` naming the seed, the virtual time, the service and
the message or value.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any, Callable

from service_framework.errors import InvariantViolation
from service_framework.events import Event
from service_framework.transport.base import Frames

if TYPE_CHECKING:
    from .bus import TestBus

SLACK_S = 0.5  # a reply's timer may fire a little after the deadline it computed


class Invariants:
    """Watches one run of a `TestBus` and checks the invariants above."""

    def __init__(self, bus: "TestBus") -> None:
        self.bus = bus
        self.expected_errors: list[type | str] = []
        self.user: list[Callable[[Any], Any]] = []
        self._sent: dict[tuple[str, str], list[Frames]] = defaultdict(list)
        self._delivered: dict[tuple[str, str], list[Frames]] = defaultdict(list)
        self._open: dict[tuple[str, str, str], tuple[float, float]] = {}
        self._budgets: dict[str, dict[str, float]] = {}
        self.violations: list[str] = []

    # -- watching -------------------------------------------------------------------------
    def watch_bus(self, bus: Any) -> None:
        """Hooks the delivery checks into a memory bus (sent: through its fault hook)."""
        inner = bus.fault_hook

        def sent(packet):
            self._sent[(packet.src, packet.dst)].append(packet.frames)
            return inner(packet) if inner is not None else [(0.0, packet.frames)]

        bus.fault_hook = sent
        bus.delivery_listeners.append(self._on_delivery)

    def watch_runtime(self, runtime: Any) -> None:
        """Follows a runtime's requests (its recorded events)."""
        if self._on_event in runtime.event_listeners:
            return
        budget = {name: connection.timeout_s * (1 + connection.retries)
                  for name, connection in runtime.out_connections.items()
                  if hasattr(connection, "timeout_s")}
        self._budgets[runtime.name] = budget
        runtime.event_listeners.append(lambda event, name=runtime.name: self._on_event(
            name, event))

    def _on_event(self, service: str, event: Event) -> None:
        budget = self._budgets.get(service, {})
        if event.name not in budget:
            return
        key = (service, event.name, event.workflow_id)
        if event.dir == "out" and event.kind == "request":
            self._open[key] = (event.t, budget[event.name])
        elif event.dir == "in" and event.kind in ("reply", "error"):
            started = self._open.pop(key, None)
            if started is not None and event.t - started[0] > started[1] + SLACK_S:
                self._fail(event.t, service, f"request {event.name!r} (workflow "
                           f"{event.workflow_id}) ended after {event.t - started[0]:.3f}s, "
                           f"beyond its timeout and retries ({started[1]:g}s)",
                           raise_now=False)

    def _on_delivery(self, src: str, dst: str, frames: Frames) -> None:
        self._delivered[(src, dst)].append(frames)
        if self.user and not self.violations:
            self.check_user(dst.partition(".")[0], f"a delivery {src} -> {dst}")

    def check_user(self, service: str, when: str) -> None:
        """The test's own invariants; a violation is kept (a delivery happens inside some
        service's step, which would swallow it) and raised by `raise_kept`."""
        for check in self.user:
            try:
                holds = check(self.bus) is not False
                problem = "is false"
            except Exception as error:
                holds, problem = False, f"raised {type(error).__name__}: {error}"
            if not holds:
                message = (f"seed {self.bus.seed}, t={self.bus.clock.monotonic():.6f}, "
                           f"service {service!r}: invariant "
                           f"{getattr(check, '__name__', check)!r} {problem} after {when}")
                self.violations.append(message)
                return

    def raise_kept(self) -> None:
        if self.violations:
            raise InvariantViolation(self.violations[0])

    # -- checking -------------------------------------------------------------------------
    def _fail(self, t: float, service: str, what: str, raise_now: bool = True) -> None:
        message = f"seed {self.bus.seed}, t={t:.6f}, service {service!r}: {what}"
        self.violations.append(message)
        if raise_now:  # (not inside a service's step, which would swallow it)
            raise InvariantViolation(message)

    def check_errors(self, harnesses: list) -> None:
        for harness in harnesses:
            for raised in harness.errors:
                if not self._expected(raised):
                    self._fail(raised.t, raised.service, f"{raised.where} raised "
                               f"{type(raised.error).__name__}: {raised.error} (expect it "
                               "with sf_bus.expect_errors(...) if the test means it)")

    def _expected(self, raised: Any) -> bool:
        for what in self.expected_errors:
            if isinstance(what, type) and isinstance(raised.error, what):
                return True
            if isinstance(what, str) and (what in str(raised.error) or what in raised.where):
                return True
        return False

    def check_requests(self, now: float) -> None:
        for (service, name, workflow_id), (t, budget) in sorted(self._open.items()):
            if now - t > budget + SLACK_S:
                self._fail(now, service, f"request {name!r} (workflow {workflow_id}) sent "
                           f"at t={t:.6f} never ended in a reply, an error or a timeout")

    def links_between(self, services: set[tuple[str, str]]) -> set[tuple[str, str]]:
        """The socket links (owner to owner) that carried messages between these services."""
        return {link for link in self._delivered
                if (link[0].partition(".")[0], link[1].partition(".")[0]) in services}

    def check_links(self, faulted: set[tuple[str, str]]) -> None:
        for link, delivered in self._delivered.items():
            sent = self._sent.get(link, [])
            if link in faulted:  # duplicated, reordered or delayed: any order, any count
                for frames in delivered:
                    if frames not in sent:
                        self._fail(self.bus.clock.monotonic(), link[1].partition(".")[0],
                                   f"the bus delivered on {link[0]} -> {link[1]} a message "
                                   "that was never sent")
                continue
            position = 0
            for index, frames in enumerate(delivered):
                while position < len(sent) and sent[position] != frames:
                    position += 1  # lost (a drop, a high-water mark): allowed
                if position == len(sent):
                    self._fail(self.bus.clock.monotonic(), link[1].partition(".")[0],
                               f"delivery {index} on {link[0]} -> {link[1]} was not sent, or "
                               "came out of order")
                position += 1

    def check_states(self, harnesses: list) -> None:
        outs = {}
        for harness in harnesses:
            runtime = harness.runtime
            if runtime is None or runtime.closed:
                continue
            for out in runtime.out_states.values():  # its last bound socket: the replyer
                if getattr(out, "bound_endpoint", None):
                    outs[_endpoint(out.bound_endpoint)] = (harness.name, out)
        now = self.bus.clock.monotonic()
        for harness in harnesses:
            runtime = harness.runtime
            if runtime is None or runtime.closed:
                continue
            for in_state in runtime.in_states.values():
                if not in_state.has_address("requester"):
                    continue  # no snapshot pair: matched by nothing here (full states only)
                source = next((outs[_endpoint(e)] for e in in_state.endpoints(
                    "requester", many=True) if _endpoint(e) in outs), None)
                if source is None:
                    continue  # its out side is not on this bus (or crashed for good)
                name, out = source
                if not in_state.synced or in_state.value != out.value:
                    self._fail(now, harness.name, f"in-state {in_state.name!r} "
                               f"({'in sync' if in_state.synced else 'not in sync'}, seq "
                               f"{in_state.seq}) differs from its out side on {name!r} "
                               f"(seq {out.seq}) after the faults healed")


def _endpoint(endpoint: str) -> str:
    host_port = endpoint.rpartition("//")[2]
    return host_port.rpartition(":")[2]
