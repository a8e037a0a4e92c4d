"""The rules of a fault plan: what a packet is (`classify`), and `FaultRule`, what selects
packets and what becomes of them. `Faults` (`faults.py`) keeps the rules and applies them.

A rule matches a packet when every matcher given holds:
- `link=(from_service, to_service)`: that direction only (a partition: both, unless
  `one_way`); `connection=` / `state=`: the component at either end;
- `topic=`: the topic frame of a published message;
- `kind=` (one or several of `KINDS`): 'request', 'reply', 'publish', 'delta' (a state
  update, whole or delta), 'snapshot_request', 'snapshot_reply', 'heartbeat';
- `seq=` (int or iterable): state updates with that seq; `when=`: a predicate on the frames.
It then hits by `nth=` (int or iterable: positions, from 0, among the packets its matchers
selected, so "drop the 4th delta" is `drop(state='book', kind='delta', nth=3)`), by
`probability=` (a draw), and at most `times=` times; it is in force until `until`, when
given (seconds on the transport's clock: a partition's `seconds=`/`until=`).
"""

from __future__ import annotations

import random as _random
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from service_framework.states import protocol
from service_framework.transport.base import Frames, Packet, SocketKind
from service_framework.wire import codec

__all__ = ["FaultRule", "KINDS", "REORDER_HOLD_S", "classify"]

KINDS = frozenset({"request", "reply", "publish", "delta", "snapshot_request",
                   "snapshot_reply", "heartbeat"})
# A reordered packet is held back this long (seconds), so packets sent after it in the
# same instant overtake it; short enough to stay inside any sane timeout.
REORDER_HOLD_S = 0.001
Predicate = Callable[[Frames], bool]

_BY_SOCKETS = {(SocketKind.XPUB, SocketKind.SUB): "publish",
               (SocketKind.DEALER, SocketKind.ROUTER): "request",
               (SocketKind.ROUTER, SocketKind.DEALER): "reply"}


def classify(packet: Packet) -> tuple[str | None, int | None]:
    """The kind of a packet (None for a subscription) and, for a state update, its seq.

    The socket kinds say request, reply or published message; the state protocol's bodies
    (`service_framework.states.protocol`) tell a state's messages from a connection's.
    """
    kind = _BY_SOCKETS.get((packet.src_kind, packet.dst_kind))
    if kind is None or not packet.frames:
        return kind, None
    body = packet.frames[-1]
    limit = len(body) + 1
    try:
        if kind == "publish":
            message = protocol.decode_message(body, max_bytes=limit)
            if isinstance(message, protocol.Update):
                return "delta", message.seq
            return "heartbeat", None
        if kind == "request":
            protocol.decode_snapshot_request(body, max_bytes=limit)
            envelope = "workflow_id" in codec.unpack(body, max_bytes=limit)  # a connection's
            return ("request" if envelope else "snapshot_request"), None
        protocol.decode_snapshot(body, max_bytes=limit)
        return "snapshot_reply", None
    except ValueError:  # not a state protocol body (or not one at all)
        return kind, None


class Classified:
    """A packet's kind and seq, decoded once and only when a rule asks."""

    __slots__ = ("packet", "_value")

    def __init__(self, packet: Packet) -> None:
        self.packet = packet
        self._value: tuple[str | None, int | None] | None = None

    def get(self) -> tuple[str | None, int | None]:
        if self._value is None:
            self._value = classify(self.packet)
        return self._value


@dataclass(eq=False)
class FaultRule:
    """One rule of a plan (see the module's docstring). `seen` counts the packets its
    matchers selected, `hits` those it acted on; `call` is how the plan's log writes it."""

    action: str  # 'drop', 'duplicate', 'reorder', 'delay', 'tamper', 'partition'
    link: tuple[str, str] | None = None
    both_ways: bool = False
    name: str | None = None  # a connection or a state, at either end
    topic: bytes | None = None
    kinds: frozenset[str] | None = None
    seqs: frozenset[int] | None = None
    when: Predicate | None = None
    nth: frozenset[int] | None = None
    probability: float | None = None
    times: int | None = None
    seconds: float = 0.0  # delay
    later: int | None = None  # duplicate, reorder: after this many more packets on the link
    replace: Callable[[Frames], Frames] | None = None  # tamper
    until: float | None = None  # in force until then (the transport's clock); None: no end
    call: str = ""
    seen: int = 0
    hits: int = 0

    def matches(self, packet: Packet, classified: Classified) -> bool:
        if self.link is not None:
            route = (packet.src_service, packet.dst_service)
            if route != self.link and not (self.both_ways and route == self.link[::-1]):
                return False
        if self.name is not None and self.name not in (packet.src_component,
                                                       packet.dst_component):
            return False
        if self.topic is not None and packet.topic != self.topic:
            return False
        if self.kinds is not None or self.seqs is not None:
            kind, seq = classified.get()
            if self.kinds is not None and kind not in self.kinds:
                return False
            if self.seqs is not None and (kind != "delta" or seq not in self.seqs):
                return False
        return self.when is None or bool(self.when(packet.frames))

    def fires(self, random: _random.Random) -> bool:
        index = self.seen
        self.seen += 1
        if self.times is not None and self.hits >= self.times:
            return False
        if self.nth is not None and index not in self.nth:
            return False
        if self.probability is not None and random.random() >= self.probability:
            return False
        self.hits += 1
        return True


def numbers(value: int | Iterable[int] | None) -> frozenset[int] | None:
    if value is None:
        return None
    return frozenset([value] if isinstance(value, int) else value)


def kinds(value: str | Iterable[str] | None) -> frozenset[str] | None:
    if value is None:
        return None
    found = frozenset([value] if isinstance(value, str) else value)
    if not found <= KINDS:
        raise ValueError(f"unknown kind(s) {sorted(found - KINDS)}; kinds are {sorted(KINDS)}")
    return found


def build_rule(action: str, *, link: tuple[str, str] | None = None,
               connection: str | None = None, state: str | None = None,
               topic: str | bytes | None = None, kind: Any = None, seq: Any = None,
               when: Callable | None = None, nth: Any = None,
               probability: float | None = None, times: int | None = None,
               **options: Any) -> FaultRule:
    """A rule from the matchers a plan's call was given (see the module's docstring)."""
    if connection is not None and state is not None:
        raise ValueError("match a connection or a state, not both")
    return FaultRule(action, link=tuple(link) if link else None,
                     name=connection if connection is not None else state,
                     topic=topic.encode() if isinstance(topic, str) else topic,
                     kinds=kinds(kind), seqs=numbers(seq), when=when, nth=numbers(nth),
                     probability=probability, times=times, **options)


# held: link -> [[packets to wait, frames, kind they wait for (None: any)]]
Held = dict[tuple, list[list]]


def count_down(held: Held, key: tuple, classified: Classified) -> list[Frames]:
    """One more packet passed on the link `key`: the held packets whose wait is over."""
    waiting = held[key]
    kind = classified.get()[0]
    for item in waiting:
        if item[2] is None or item[2] == kind:
            item[0] -= 1
    due = [frames for wait, frames, _ in waiting if wait <= 0]
    rest = [item for item in waiting if item[0] > 0]
    if rest:
        held[key] = rest
    else:
        del held[key]
    return due


def apply_rules(rules: list[FaultRule], random: _random.Random, held: Held, packet: Packet,
                key: tuple, classified: Classified) -> list[tuple[float, Frames]]:
    """The copies of `packet` the rules let through, each with its delay; copies to send
    later on the link (`later=`) go to `held`. A packet lost to one rule still counts as
    seen by the other rules that select it, so a rule's `nth=` does not depend on the rules
    before it."""
    frames, delay, copies, holds = packet.frames, 0.0, 1, []
    for index, rule in enumerate(rules):
        if not rule.matches(packet, classified):
            continue
        if rule.action == "partition":
            rule.seen += 1
            rule.hits += 1
            return _lost(rules[index + 1:], packet, classified)
        if not rule.fires(random):
            continue
        action = rule.action
        if action == "drop":
            return _lost(rules[index + 1:], packet, classified)
        if action == "duplicate":
            if rule.later:
                holds.append(rule.later)
            else:
                copies += 1
        elif action == "reorder":
            if rule.later:
                holds.append(rule.later)
                copies -= 1
            else:
                delay = max(delay, REORDER_HOLD_S)
        elif action == "delay":
            delay += rule.seconds
        elif action == "tamper":
            frames = rule.replace(frames)
    for wait in holds:
        held.setdefault(key, []).append([wait, frames, classified.get()[0]])
    return [(delay, frames)] * max(copies, 0)


def _lost(rest: list[FaultRule], packet: Packet, classified: Classified) -> list:
    for rule in rest:
        if rule.matches(packet, classified):
            rule.seen += 1
    return []
