"""Faults the memory bus injects: drop, duplicate, reorder, delay, partition.

A rule matches packets by link (`(from_service, to_service)`), by connection or state name
(either end), or by topic, and hits them by position (`nth`, counted from 0 over the
packets it matches) or by probability (drawn from the bus's seeded generator).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable

from .base import Frames, SocketKind

if TYPE_CHECKING:
    from .memory import MemoryBus, MemorySocket

# A reordered packet is held back this long (virtual seconds), so packets sent after it
# in the same instant overtake it; short enough to stay inside any sane timeout.
REORDER_HOLD_S = 0.001


@dataclass
class Packet:
    src: "MemorySocket"
    dst: "MemorySocket"
    frames: Frames

    @property
    def topic(self) -> bytes | None:
        return self.frames[0] if self.src.kind is SocketKind.XPUB else None


@dataclass
class FaultRule:
    action: str  # 'drop', 'duplicate', 'reorder', 'delay', 'partition'
    link: tuple[str, str] | None = None
    name: str | None = None
    topic: bytes | None = None
    nth: frozenset[int] | None = None
    probability: float | None = None
    seconds: float = 0.0
    both_ways: bool = False
    seen: int = 0
    hits: int = 0
    enabled: bool = True

    def matches(self, packet: Packet) -> bool:
        if self.link is not None:
            route = (packet.src.service, packet.dst.service)
            if route != self.link and not (self.both_ways and route == self.link[::-1]):
                return False
        if self.name is not None and self.name not in (packet.src.component,
                                                       packet.dst.component):
            return False
        if self.topic is not None and packet.topic != self.topic:
            return False
        return True

    def fires(self, bus: "MemoryBus") -> bool:
        index = self.seen
        self.seen += 1
        if self.nth is not None and index not in self.nth:
            return False
        if self.probability is not None and bus.random.random() >= self.probability:
            return False
        self.hits += 1
        return True

    def disable(self) -> None:
        self.enabled = False


def _positions(nth: int | Iterable[int] | None) -> frozenset[int] | None:
    if nth is None:
        return None
    return frozenset([nth] if isinstance(nth, int) else nth)


@dataclass
class Faults:
    """`sf_bus.faults`: add rules; every rule stays until `clear()` or `rule.disable()`."""

    bus: Any
    rules: list[FaultRule] = field(default_factory=list)

    @property
    def active(self) -> bool:
        return bool(self.rules)

    def _add(self, action: str, *, link=None, connection=None, state=None, topic=None,
             nth=None, probability=None, seconds: float = 0.0,
             both_ways: bool = False) -> FaultRule:
        if connection is not None and state is not None:
            raise ValueError("match a connection or a state, not both")
        if isinstance(topic, str):
            topic = topic.encode()
        rule = FaultRule(action, link=tuple(link) if link else None,
                         name=connection if connection is not None else state, topic=topic,
                         nth=_positions(nth), probability=probability, seconds=seconds,
                         both_ways=both_ways)
        self.rules.append(rule)
        return rule

    def drop(self, **match: Any) -> FaultRule:
        return self._add("drop", **match)

    def duplicate(self, **match: Any) -> FaultRule:
        return self._add("duplicate", **match)

    def reorder(self, **match: Any) -> FaultRule:
        return self._add("reorder", **match)

    def delay(self, seconds: float, **match: Any) -> FaultRule:
        return self._add("delay", seconds=seconds, **match)

    def partition(self, a: str, b: str, *, one_way: bool = False) -> FaultRule:
        """Cuts the link a→b (and b→a unless `one_way`) until `heal()`."""
        return self._add("partition", link=(a, b), both_ways=not one_way)

    def heal(self) -> None:
        self.rules = [rule for rule in self.rules if rule.action != "partition"]

    def clear(self) -> None:
        self.rules = []

    def crash(self, service: str) -> None:
        self.bus.crash(service)

    def restart(self, service: str) -> None:
        self.bus.restart(service)

    def apply(self, packet: Packet) -> list[tuple[float, Frames]]:
        """The copies of `packet` to deliver, each with its delay."""
        delay = 0.0
        copies = 1
        for rule in self.rules:
            if not rule.enabled or not rule.matches(packet):
                continue
            if rule.action == "partition":
                rule.hits += 1
                return []
            if not rule.fires(self.bus):
                continue
            if rule.action == "drop":
                return []
            if rule.action == "duplicate":
                copies += 1
            elif rule.action == "reorder":
                delay = max(delay, REORDER_HOLD_S)
            elif rule.action == "delay":
                delay += rule.seconds
        return [(delay, packet.frames)] * copies
