"""Fault plans a seed draws, and the concrete faults a run suffered, as Python a test can paste.

A sweep (`simulation`) runs each seed with a plan drawn from a level, as TigerBeetle's VOPR
does: `calm` (no fault), `stormy` (drop, duplicate, reorder and delay messages, partitions
that heal), `hostile` (stormy, plus crashes with restarts, and stalls). Message faults are
drawn per message between services (never on the harness's own sockets: the test's
requests arrive as it says), from a generator of the plan's own (so the schedule's choices
do not move when the plan does); what actually hit is recorded as concrete `Fault`s — "drop the
4th request from client to shop" — which replay the same run exactly when all are kept and
which a shrink removes one by one.
"""

from __future__ import annotations

import random as _random
from dataclasses import dataclass, field
from typing import Any

from service_framework.transport.base import Packet

from .faults import REORDER_HOLD_S, Faults, classify

LEVELS = ("calm", "stormy", "hostile")
# Per-message probabilities of the message faults of a stormy (and hostile) run.
STORMY = {"drop": 0.03, "duplicate": 0.03, "reorder": 0.03, "delay": 0.02}
DELAYS_S = (0.05, 0.2, 1.0)
PARTITION_S = (0.5, 3.0)  # how long a partition lasts before it heals
CRASH_DOWN_S = (0.1, 2.0)  # how long a crashed service stays down
STALL_S = (0.2, 2.0)
HORIZON_S = 5.0  # timed faults fall within this much virtual time of the first message
HARNESS = "harness"  # the owner name of the harness's sockets: no drawn fault there


@dataclass(frozen=True)
class Fault:
    """One fault a run suffered, concrete enough to run again.

    A message fault names the link, the kind of message and its position among the
    messages of that kind on that link; a timed one names services and virtual times.
    """

    action: str  # drop, duplicate, reorder, delay | partition, crash, stall
    link: tuple[str, str] | None = None
    kind: str | None = None
    nth: int | None = None
    seconds: float = 0.0
    services: tuple[str, ...] = ()
    at: float = 0.0
    until: float = 0.0

    def apply(self, faults: Faults) -> None:
        """Adds this fault to a plan."""
        if self.action in ("drop", "duplicate", "reorder"):
            getattr(faults, self.action)(link=self.link, kind=self.kind, nth=self.nth)
        elif self.action == "delay":
            faults.delay(self.seconds, link=self.link, kind=self.kind, nth=self.nth)
        elif self.action == "partition":
            faults.partition(*self.services, at=self.at, until=self.until)
        elif self.action == "crash":
            faults.crash(self.services[0], at=self.at)
            faults.restart(self.services[0], at=self.until)
        elif self.action == "stall":
            faults.stall(self.services[0], self.until - self.at, at=self.at)

    def __str__(self) -> str:
        """The `sf_bus.faults` call(s) that inject this fault."""
        if self.link is not None:
            seconds = f"{self.seconds:g}, " if self.action == "delay" else ""
            return (f"sf_bus.faults.{self.action}({seconds}link={self.link!r}, "
                    f"kind={self.kind!r}, nth={self.nth})")
        if self.action == "partition":
            a, b = self.services
            return f"sf_bus.faults.partition({a!r}, {b!r}, at={self.at:g}, until={self.until:g})"
        name = self.services[0]
        if self.action == "crash":
            return (f"sf_bus.faults.crash({name!r}, at={self.at:g}); "
                    f"sf_bus.faults.restart({name!r}, at={self.until:g})")
        return f"sf_bus.faults.stall({name!r}, {self.until - self.at:g}, at={self.at:g})"


@dataclass
class DrawnPlan:
    """The plan of one seed at one level: message faults drawn as messages pass (recorded
    in `suffered`), timed faults drawn once the services exist (at the first message)."""

    level: str
    seed: int
    suffered: list[Fault] = field(default_factory=list)
    _counts: dict[tuple, int] = field(default_factory=dict)
    _timed_drawn: bool = False
    error: Exception | None = None  # drawing the timed faults failed (raised by the check)

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise ValueError(f"fault level must be one of {', '.join(LEVELS)}, "
                             f"got {self.level!r}")
        self.random = _random.Random(f"faults-{self.level}-{self.seed}")

    def install(self, faults: Faults, services: Any) -> None:
        """Hooks this plan into `faults`: `services()` names the services on the bus."""
        self._faults, self._services = faults, services
        self._apply = faults.apply

        def apply(packet: Packet) -> list:
            if not self._timed_drawn:
                try:
                    self._draw_timed()
                except Exception as error:  # inside a service's send: it would be eaten
                    self.error = error
            return self._message(packet)

        faults.transport.fault_hook = apply

    def _message(self, packet: Packet) -> list:
        link = (packet.src_service, packet.dst_service)
        if HARNESS in link:  # the test's own hand: its requests arrive as it says
            return self._apply(packet)
        kind, _ = classify(packet)
        index = self._counts.get((link, kind), 0)
        self._counts[(link, kind)] = index + 1
        copies = self._apply(packet)
        if self.level == "calm" or kind is None or copies != [(0.0, packet.frames)]:
            return copies  # a fault of the test's own (or a partition) acted: leave it
        draw = self.random.random
        for action, probability in STORMY.items():
            if draw() >= probability:
                continue
            seconds = self.random.choice(DELAYS_S) if action == "delay" else 0.0
            self.suffered.append(Fault(action, link=link, kind=kind, nth=index,
                                       seconds=seconds))
            if action == "drop":
                return []
            if action == "duplicate":
                return copies * 2
            if action == "reorder":
                return [(REORDER_HOLD_S, packet.frames)]
            return [(seconds, packet.frames)]
        return copies

    def _draw_timed(self) -> None:
        self._timed_drawn = True
        if self.level == "calm":
            return
        names = sorted(self._services())
        now = self._faults.transport.clock.monotonic()
        uniform = self.random.uniform
        timed: list[Fault] = []
        if len(names) >= 2 and self.random.random() < 0.5:
            a, b = self.random.sample(names, 2)
            at = now + uniform(0.0, HORIZON_S)
            timed.append(Fault("partition", services=(a, b), at=at,
                               until=at + uniform(*PARTITION_S)))
        if self.level == "hostile" and names:
            for action, window in (("crash", CRASH_DOWN_S), ("stall", STALL_S)):
                if self.random.random() < 0.5:
                    at = now + uniform(0.0, HORIZON_S)
                    timed.append(Fault(action, services=(self.random.choice(names),), at=at,
                                       until=at + uniform(*window)))
        for fault in timed:
            fault.apply(self._faults)
        self.suffered.extend(timed)


def replay_plan(faults: Faults, kept: list[Fault]) -> None:
    """Puts concrete faults into a plan (a shrink's candidate, or a repro)."""
    for fault in kept:
        fault.apply(faults)
