"""`FaultyTransport`: real ZeroMQ with a fault plan (`faults.Faults`) on received messages.

    faulty = FaultyTransport()
    faulty.faults.drop(state="book", kind="delta", nth=1)   # as on sf_bus.faults
    Service(service_module=consumer, addresses=..., transport=faulty)

Import it from `service_framework_testing.faults`.
"""

from __future__ import annotations

import heapq
import itertools
import random
import threading
import weakref
from collections import deque
from typing import Sequence

from service_framework.transport.base import (
    Clock,
    Frames,
    Packet,
    Poller,
    Socket,
    SocketKind,
    Transport,
)
from service_framework.transport.memory.sockets import endpoint_key
from service_framework.transport.zmq import ZmqTransport

from .faults import Faults

__all__ = ["FaultyTransport", "FaultySocket", "FaultyPoller"]

# Who sends to a socket of each kind, by ZMQ's patterns.
_PEER_KIND = {SocketKind.SUB: SocketKind.XPUB, SocketKind.XPUB: SocketKind.SUB,
              SocketKind.DEALER: SocketKind.ROUTER, SocketKind.ROUTER: SocketKind.DEALER}


class FaultyTransport(Transport):
    """ZeroMQ with a fault plan (`faults`) applied where messages are received.

    It wraps a `ZmqTransport` (its sockets, clock and threads) so that every message a
    socket of it receives passes `faults.apply` first; `Service(transport=...)` and the
    harness use it as any transport, and nothing above the seam knows. Subscriptions
    are never faulted, as on the memory bus.

    What a rule can know here: the receiving socket (its owner, `service.component`, and
    kind) and the frames, so `connection=`, `state=`, `topic=`, `kind=`, `seq=`, `when=`,
    `nth=`, `probability=` and `times=` match as on the bus. The sender is known only when
    the receiving socket connected to a single endpoint that a socket of this same
    transport bound (a subscriber or in-state to its publisher, a requester to its
    replyer): ZeroMQ does not tell a bound socket who sent, nor this process who is behind
    an endpoint of another. So a `link=` rule, partitions included, matches replies and
    published messages between services that all run on this transport, and never a
    request arriving at a replyer nor a message from elsewhere. `delay` and `reorder` hold
    a message at the receiver in real time (`reorder(later=n)` counts messages instead),
    so the sender's high-water mark never sees them. `heal()` hands what is delayed or held
    to the receiving sockets at once. Faults that fire at a moment of the run (`at=`,
    `after=`, `on=`) and stalls need the memory bus's virtual time: here a test applies
    them between its statements.
    """

    name = "zmq"

    def __init__(self, inner: Transport | None = None, *, seed: int = 0) -> None:
        if inner is None:
            inner = ZmqTransport()
        self.inner = inner
        self.clock = inner.clock
        self.scheduler = inner.scheduler
        self.faults = Faults(self, random=random.Random(seed), name="faulty.faults")
        self._binders: dict[str, str] = {}  # endpoint key -> owner of our socket bound there
        self._lock = threading.Lock()
        self._sockets: weakref.WeakSet[FaultySocket] = weakref.WeakSet()
        self._pollers: weakref.WeakSet[FaultyPoller] = weakref.WeakSet()

    def new_id(self) -> str:
        return self.inner.new_id()

    def socket(self, kind: SocketKind, *, owner: str, hwm: int = 1000,
               max_bytes: int | None = None) -> Socket:
        socket = FaultySocket(self.inner.socket(kind, owner=owner, hwm=hwm,
                                                max_bytes=max_bytes), self)
        self._sockets.add(socket)
        return socket

    def poller(self, *, owner: str) -> Poller:
        poller = FaultyPoller(self.inner.poller(owner=owner), self.clock)
        self._pollers.add(poller)
        return poller

    # -- what the plan's heal() hands over at once --------------------------------------
    def flush_delayed(self) -> None:
        """Every delayed message is ready now, in the order it was due."""
        for socket in list(self._sockets):
            socket.flush()
        self._wake()

    def deliver_held(self, src: str | None, dst: str, dst_kind: SocketKind,
                     frames: Frames) -> bool:
        """A message the plan held back is ready now at the socket it was sent to."""
        for socket in list(self._sockets):
            if socket.owner == dst and socket.kind is dst_kind and not socket.closed:
                socket.ready.append(frames)
                self._wake()
                return True
        return False

    def _wake(self) -> None:
        for poller in list(self._pollers):
            if not poller.closed:  # a closed poller's descriptors may be someone else's now
                poller.wake()

    def _bound(self, endpoint: str, owner: str | None) -> None:
        with self._lock:
            if owner is not None:
                self._binders[endpoint_key(endpoint)] = owner
            else:
                self._binders.pop(endpoint_key(endpoint), None)

    def _binder(self, endpoint: str) -> str | None:
        with self._lock:
            return self._binders.get(endpoint_key(endpoint))


class FaultySocket(Socket):
    """A socket whose received messages pass through the transport's fault plan."""

    def __init__(self, inner: Socket, transport: FaultyTransport) -> None:
        self.inner = inner
        self.kind = inner.kind
        self.owner = inner.owner
        self.transport = transport
        self.ready: deque[Frames] = deque()  # to hand out
        self.delayed: list[tuple[float, int, Frames]] = []  # (due, order, frames)
        self._order = itertools.count()
        self._bound: list[str] = []
        self._connected: list[str] = []

    def sender(self) -> str | None:
        """The owner of the socket that sends to this one, when it can be known."""
        if self._bound or len(self._connected) != 1:
            return None
        return self.transport._binder(self._connected[0])

    def recv(self) -> Frames | None:
        if self.kind is SocketKind.XPUB:
            return self.inner.recv()  # subscriptions: never faulted
        clock = self.transport.clock
        while not self.ready:
            self._release(clock.monotonic())
            if self.ready:
                break
            frames = self.inner.recv()
            if frames is None:
                return None
            packet = Packet(self.sender(), self.owner, _PEER_KIND[self.kind], self.kind, frames)
            for delay, body in self.transport.faults.apply(packet):
                if delay > 0:
                    heapq.heappush(self.delayed,
                                   (clock.monotonic() + delay, next(self._order), body))
                else:
                    self.ready.append(body)
        return self.ready.popleft()

    def _release(self, now: float) -> None:
        while self.delayed and self.delayed[0][0] <= now:
            self.ready.append(heapq.heappop(self.delayed)[2])

    def flush(self) -> None:
        self._release(float("inf"))

    def has_ready(self, now: float) -> bool:
        return bool(self.ready) or bool(self.delayed) and self.delayed[0][0] <= now

    def next_due(self) -> float | None:
        return self.delayed[0][0] if self.delayed else None

    def bind(self, endpoint: str) -> str:
        bound = self.inner.bind(endpoint)
        self._bound.append(bound)
        self.transport._bound(bound, self.owner)
        return bound

    def connect(self, endpoint: str) -> None:
        self.inner.connect(endpoint)
        self._connected.append(endpoint)

    def send(self, frames: Frames) -> bool:
        return self.inner.send(frames)

    def subscribe(self, topic: bytes) -> None:
        self.inner.subscribe(topic)

    def secure_server(self, public: bytes, secret: bytes, *, domain: str,
                      allowed) -> None:
        self.inner.secure_server(public, secret, domain=domain, allowed=allowed)

    def secure_client(self, public: bytes, secret: bytes, *, server_public: bytes) -> None:
        self.inner.secure_client(public, secret, server_public=server_public)

    def close(self) -> None:
        for endpoint in self._bound:
            if self.transport._binder(endpoint) == self.owner:
                self.transport._bound(endpoint, None)
        self._bound.clear()
        self.inner.close()

    @property
    def closed(self) -> bool:
        return self.inner.closed


class FaultyPoller(Poller):
    """Polls the real sockets; a wrapper with a message ready (or a delay over) is readable."""

    def __init__(self, inner: Poller, clock: Clock) -> None:
        self.inner = inner
        self.clock = clock
        self.wrappers: dict[Socket, Socket] = {}  # real socket -> what was registered
        self.closed = False

    def register(self, socket: Socket) -> None:
        real = socket.inner if isinstance(socket, FaultySocket) else socket
        self.wrappers[real] = socket
        self.inner.register(real)

    def unregister(self, socket: Socket) -> None:
        real = socket.inner if isinstance(socket, FaultySocket) else socket
        if self.wrappers.pop(real, None) is not None:
            self.inner.unregister(real)

    def poll(self, timeout_s: float | None) -> Sequence[Socket]:
        faulty = [w for w in self.wrappers.values() if isinstance(w, FaultySocket)]
        now = self.clock.monotonic()
        if any(w.has_ready(now) for w in faulty):
            timeout_s = 0
        else:
            due = min((d for w in faulty if (d := w.next_due()) is not None), default=None)
            if due is not None:
                until = max(0.0, due - now)
                timeout_s = until if timeout_s is None else min(timeout_s, until)
        found = [self.wrappers.get(s, s) for s in self.inner.poll(timeout_s)]
        now = self.clock.monotonic()
        return found + [w for w in faulty if w not in found and w.has_ready(now)]

    @property
    def wakeup_fd(self) -> int | None:
        return self.inner.wakeup_fd

    def wake(self) -> None:
        self.inner.wake()

    def close(self) -> None:
        self.closed = True
        self.inner.close()
