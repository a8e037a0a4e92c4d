"""Faults on real sockets: a Transport that wraps ZeroMQ's and misbehaves on purpose.

`FaultyZmqTransport` delegates everything to `ZmqTransport`, but every SUB socket it makes
is wrapped, so a test can drop, duplicate, reorder or tamper with received messages, chosen
by a predicate on the frames or by their index. It plugs in through the transport seam
(`Service(transport=...)`): the runtime, connections and states do not know.

    faults = FaultyZmqTransport()
    faults.drop(update_seq_in({100}))             # lose update 100
    faults.duplicate(update_seq_in({50}), later=5)  # a stale copy of 50 after 5 more
    Service(service_module=consumer, addresses=..., transport=faults)
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Callable, Sequence

from service_framework.states import protocol
from service_framework.transport.base import Frames, Poller, Socket, SocketKind, Transport
from service_framework.transport.zmq import ZmqTransport

Predicate = Callable[[Frames], bool]


def update_seq(frames: Frames) -> int | None:
    """The seq of a state update in `[topic, body]` frames; None for anything else."""
    if len(frames) != 2:
        return None
    try:
        message = protocol.decode_message(frames[1])
    except ValueError:
        return None
    return message.seq if isinstance(message, protocol.Update) else None


def update_seq_in(seqs: Sequence[int]) -> Predicate:
    """Matches the updates whose seq is one of `seqs` (heartbeats never match)."""
    wanted = frozenset(seqs)
    return lambda frames: update_seq(frames) in wanted


@dataclass
class Fault:
    """One rule: what to do to the messages it matches, at most `times` times."""

    action: str  # 'drop', 'duplicate', 'reorder', 'tamper'
    when: Predicate | None = None
    nth: int | None = None  # index of the message on its socket, counted from 0
    owner: str | None = None  # only sockets whose owner contains this
    times: int | None = None
    later: int = 0  # duplicate / reorder: deliver after this many more messages
    replace: Callable[[Frames], Frames] | None = None
    fired: int = 0

    def matches(self, socket: "FaultySocket", frames: Frames, index: int) -> bool:
        if self.times is not None and self.fired >= self.times:
            return False
        if self.owner is not None and self.owner not in socket.owner:
            return False
        if self.nth is not None and index != self.nth:
            return False
        return self.when is None or self.when(frames)


class FaultyZmqTransport(Transport):
    """ZeroMQ with scripted faults on received messages of SUB sockets."""

    name = "zmq"

    def __init__(self, inner: ZmqTransport | None = None) -> None:
        self.inner = inner or ZmqTransport()
        self.clock = self.inner.clock
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    # -- scripting faults (any thread) ----------------------------------------------------
    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def drop(self, when: Predicate | None = None, **options) -> Fault:
        return self.add(Fault("drop", when, **options))

    def duplicate(self, when: Predicate | None = None, *, later: int = 0, **options) -> Fault:
        """Delivers the message, and a copy of it after `later` more messages."""
        return self.add(Fault("duplicate", when, later=later, **options))

    def reorder(self, when: Predicate | None = None, *, later: int = 1, **options) -> Fault:
        """Holds the message back until `later` more messages have been delivered."""
        return self.add(Fault("reorder", when, later=later, **options))

    def tamper(self, when: Predicate | None, replace: Callable[[Frames], Frames],
               **options) -> Fault:
        return self.add(Fault("tamper", when, replace=replace, **options))

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def _match(self, socket: "FaultySocket", frames: Frames, index: int) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.matches(socket, frames, index):
                    fault.fired += 1
                    return fault
        return None

    # -- the Transport interface ----------------------------------------------------------
    def socket(self, kind: SocketKind, *, owner: str, hwm: int = 1000) -> Socket:
        socket = self.inner.socket(kind, owner=owner, hwm=hwm)
        return FaultySocket(socket, self) if kind is SocketKind.SUB else socket

    def poller(self, *, owner: str) -> Poller:
        return FaultyPoller(self.inner.poller(owner=owner))


class FaultySocket(Socket):
    """A SUB socket whose received messages pass through the transport's faults."""

    def __init__(self, inner: Socket, transport: FaultyZmqTransport) -> None:
        self.inner = inner
        self.kind = inner.kind
        self.owner = inner.owner
        self.transport = transport
        self.pending: deque[Frames] = deque()  # ready to hand out
        self.held: list[list] = []  # [messages still to wait for, frames]
        self.received = 0

    def recv(self) -> Frames | None:
        while not self.pending:
            frames = self.inner.recv()
            if frames is None:
                return None
            index, self.received = self.received, self.received + 1
            fault = self.transport._match(self, frames, index)
            deliver: list[Frames] = []
            hold: list[list] = []
            if fault is None:
                deliver.append(frames)
            elif fault.action == "tamper":
                deliver.append(fault.replace(frames))
            elif fault.action == "duplicate":
                deliver.append(frames)
                if fault.later:
                    hold.append([fault.later, frames])
                else:
                    deliver.append(frames)
            elif fault.action == "reorder":
                hold.append([fault.later, frames])
            # this message counts towards the ones held earlier, not towards its own
            for item in self.held:
                item[0] -= 1
            deliver.extend(held for wait, held in self.held if wait <= 0)
            self.held = [item for item in self.held if item[0] > 0] + hold
            self.pending.extend(deliver)
        return self.pending.popleft()

    def bind(self, endpoint: str) -> str:
        return self.inner.bind(endpoint)

    def connect(self, endpoint: str) -> None:
        self.inner.connect(endpoint)

    def send(self, frames: Frames) -> bool:
        return self.inner.send(frames)

    def subscribe(self, topic: bytes) -> None:
        self.inner.subscribe(topic)

    def close(self) -> None:
        self.inner.close()

    @property
    def closed(self) -> bool:
        return self.inner.closed


class FaultyPoller(Poller):
    """Polls the real sockets; a wrapper with messages already pending counts as readable."""

    def __init__(self, inner: Poller) -> None:
        self.inner = inner
        self.wrappers: dict[Socket, Socket] = {}  # real socket -> what the runtime registered

    def register(self, socket: Socket) -> None:
        real = socket.inner if isinstance(socket, FaultySocket) else socket
        self.wrappers[real] = socket
        self.inner.register(real)

    def unregister(self, socket: Socket) -> None:
        real = socket.inner if isinstance(socket, FaultySocket) else socket
        if self.wrappers.pop(real, None) is not None:
            self.inner.unregister(real)

    def poll(self, timeout_s: float | None) -> Sequence[Socket]:
        pending = [w for w in self.wrappers.values()
                   if isinstance(w, FaultySocket) and w.pending]
        ready = [self.wrappers.get(s, s) for s in self.inner.poll(0 if pending else timeout_s)]
        return ready + [w for w in pending if w not in ready]

    def wake(self) -> None:
        self.inner.wake()

    def close(self) -> None:
        self.inner.close()
