"""One fault model for both transports: rules that lose, copy, delay, reorder or change
messages, and crash and restart services.

    sf_bus.faults.drop(state="book", kind="delta", nth=3)        # the 4th update is lost
    sf_bus.faults.duplicate(state="book", seq={10, 20})         # updates 10 and 20 twice
    sf_bus.faults.partition("gateway", "orders", one_way=True)  # gateway -> orders cut
    sf_bus.faults.crash("orders"); sf_bus.faults.restart("orders")

A `Faults` plan is a list of `FaultRule`s; `apply(packet)` says what becomes of one message
(a transport-neutral `Packet`: sending and receiving owner, socket kinds, frames). The
memory bus calls it as it transmits (`bus.fault_hook`, which `sf_bus` sets); over ZeroMQ a
`FaultyTransport` (`faulty.py`) calls it as messages are received. The same plan gives the
same faults on both; on the bus, draws come from the bus's seed.

A rule matches a packet when every matcher given holds:
- `link=(from_service, to_service)`: that direction only (a partition: both, unless
  `one_way`); `connection=` / `state=`: the component at either end;
- `topic=`: the topic frame of a published message;
- `kind=` (one or several of `KINDS`): 'request', 'reply', 'publish', 'delta' (a state
  update, whole or delta), 'snapshot_request', 'snapshot_reply', 'heartbeat';
- `seq=` (int or iterable): state updates with that seq; `when=`: a predicate on the frames.
It then hits by `nth=` (int or iterable: positions, from 0, among the packets its matchers
selected, so "drop the 4th delta" is `drop(state='book', kind='delta', nth=3)`), by
`probability=` (a draw), and at most `times=` times.

What a test's fake out side needs reads, for a state `s`: lose the next update,
`drop(state=s, kind='delta', times=1)`; hold the next update back until the one after it
passed, `reorder(state=s, kind='delta', times=1, later=1)`, or until `release()`; send
the next update twice, `duplicate(state=s, kind='delta', times=1)`.
"""

from __future__ import annotations

import random as _random
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from service_framework.service import Service, running_services
from service_framework.states import protocol
from service_framework.transport.base import Frames, Packet, SocketKind
from service_framework.wire import codec

__all__ = ["Faults", "FaultRule", "KINDS", "classify"]

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


class _Classified:
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
    matchers selected, `hits` those it acted on."""

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
    seen: int = 0
    hits: int = 0

    def matches(self, packet: Packet, classified: _Classified) -> bool:
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


def _numbers(value: int | Iterable[int] | None) -> frozenset[int] | None:
    if value is None:
        return None
    return frozenset([value] if isinstance(value, int) else value)


def _kinds(value: str | Iterable[str] | None) -> frozenset[str] | None:
    if value is None:
        return None
    kinds = frozenset([value] if isinstance(value, str) else value)
    if not kinds <= KINDS:
        raise ValueError(f"unknown kind(s) {sorted(kinds - KINDS)}; kinds are {sorted(KINDS)}")
    return kinds


class Faults:
    """A fault plan: `sf_bus.faults`, `FaultyTransport.faults`. Rules stay until `clear()`
    (partitions: until `heal()`). `transport` is where `crash`/`restart` find services;
    `random` draws `probability=` hits (the bus passes its own, so its seed fixes them)."""

    def __init__(self, transport: Any = None, *, random: _random.Random | None = None,
                 seed: int = 0) -> None:
        self.transport = transport
        self.random = random if random is not None else _random.Random(seed)
        self.rules: list[FaultRule] = []
        # link -> [[packets to wait, frames, kind they wait for (None: any)]]
        self._held: dict[tuple, list[list]] = {}
        self._crashed: dict[str, Service] = {}
        self._lock = threading.RLock()  # over ZeroMQ every service's thread applies it

    # -- rules ------------------------------------------------------------------------------
    def _add(self, action: str, *, link: tuple[str, str] | None = None,
             connection: str | None = None, state: str | None = None,
             topic: str | bytes | None = None, kind: str | Iterable[str] | None = None,
             seq: int | Iterable[int] | None = None, when: Predicate | None = None,
             nth: int | Iterable[int] | None = None, probability: float | None = None,
             times: int | None = None, **options: Any) -> FaultRule:
        if connection is not None and state is not None:
            raise ValueError("match a connection or a state, not both")
        rule = FaultRule(action, link=tuple(link) if link else None,
                         name=connection if connection is not None else state,
                         topic=topic.encode() if isinstance(topic, str) else topic,
                         kinds=_kinds(kind), seqs=_numbers(seq), when=when, nth=_numbers(nth),
                         probability=probability, times=times, **options)
        with self._lock:
            self.rules.append(rule)
        return rule

    def drop(self, **match: Any) -> FaultRule:
        """The packets hit are lost."""
        return self._add("drop", **match)

    def duplicate(self, *, later: int = 0, **match: Any) -> FaultRule:
        """The packets hit arrive twice: at once, or the copy after `later` more packets of
        their kind on the same link (a stale copy)."""
        return self._add("duplicate", later=later, **match)

    def reorder(self, *, later: int | None = None, **match: Any) -> FaultRule:
        """The packets hit are held back: `REORDER_HOLD_S`, so packets sent right after
        overtake them, or until `later` more packets of their kind on the same link have
        passed (heartbeats do not move a held update), or until `release()`."""
        return self._add("reorder", later=later, **match)

    def release(self) -> None:
        """Ends every hold: each held packet goes out with the next packet on its link."""
        with self._lock:
            for held in self._held.values():
                for item in held:
                    item[0], item[2] = 1, None

    def delay(self, seconds: float, **match: Any) -> FaultRule:
        """The packets hit arrive `seconds` later."""
        return self._add("delay", seconds=seconds, **match)

    def tamper(self, replace: Callable[[Frames], Frames], **match: Any) -> FaultRule:
        """The packets hit arrive as `replace(frames)`."""
        return self._add("tamper", replace=replace, **match)

    def partition(self, a: str, b: str, *, one_way: bool = False) -> FaultRule:
        """Cuts the link a→b (and b→a unless `one_way`) until `heal()`."""
        return self._add("partition", link=(a, b), both_ways=not one_way)

    def heal(self) -> None:
        """Ends every partition (other rules stay)."""
        with self._lock:
            self.rules = [rule for rule in self.rules if rule.action != "partition"]

    def clear(self) -> None:
        with self._lock:
            self.rules = []

    # -- services ---------------------------------------------------------------------------
    def crash(self, service: str) -> None:
        """Ends the service named `service` abruptly (`Service.crash`): no drain, what its
        sockets held is lost."""
        for running in running_services():
            if running.transport is self.transport and running.name == service:
                running.crash()
                self._crashed[service] = running
                return
        raise KeyError(f"no running service named {service!r} on this transport")

    def restart(self, service: str) -> None:
        """Starts a crashed service again (`Service.restart`: a fresh runtime, new epochs)."""
        crashed = self._crashed.pop(service, None)
        if crashed is None:
            raise KeyError(f"no crashed service named {service!r} on this transport")
        crashed.restart()

    # -- applying -----------------------------------------------------------------------------
    def apply(self, packet: Packet) -> list[tuple[float, Frames]]:
        """The copies of `packet` to deliver, each with its delay; after them, the packets
        held on its link whose wait is over."""
        with self._lock:
            if not self.rules and not self._held:
                return [(0.0, packet.frames)]
            key = (packet.src, packet.dst, packet.dst_kind)
            classified = _Classified(packet)
            released = self._count_down(key, classified) if key in self._held else []
            copies = self._copies(packet, key, classified)
            return copies + [(0.0, frames) for frames in released]

    def _count_down(self, key: tuple, classified: _Classified) -> list[Frames]:
        held = self._held[key]
        kind = classified.get()[0]
        for item in held:
            if item[2] is None or item[2] == kind:
                item[0] -= 1
        due = [frames for wait, frames, _ in held if wait <= 0]
        rest = [item for item in held if item[0] > 0]
        if rest:
            self._held[key] = rest
        else:
            del self._held[key]
        return due

    def _copies(self, packet: Packet, key: tuple,
                classified: _Classified) -> list[tuple[float, Frames]]:
        frames, delay, copies, holds = packet.frames, 0.0, 1, []
        for rule in self.rules:
            if not rule.matches(packet, classified):
                continue
            if rule.action == "partition":
                rule.seen += 1
                rule.hits += 1
                return []
            if not rule.fires(self.random):
                continue
            action = rule.action
            if action == "drop":
                return []
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
            self._held.setdefault(key, []).append([wait, frames, classified.get()[0]])
        return [(delay, frames)] * max(copies, 0)


# Over ZeroMQ (the module is its own, for size; it loads `zmq` only when one is made).
