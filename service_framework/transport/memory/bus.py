"""The memory transport itself: sockets that bind and link, and delivery between them.

It keeps the ZMQ semantics a service can observe: a publisher with no subscriber drops,
topic filters match by prefix (the subscriber then checks the exact topic), per-link order
is kept, high-water marks drop, a request with no replyer times out. Delivery happens at
once, in the sender's step; a fault hook (`fault_hook`, None: no faults and no cost) may
lose, copy or delay each message. One timed queue, ordered by (virtual time, the order
things were queued in), holds delayed messages and calls scheduled with `call_at` (a fault
plan's entries), so what happens at one instant happens in one order for a seed. Who steps
when is the scheduler's job (`scheduler.py`).
"""

from __future__ import annotations

import datetime as _dt
import heapq
import itertools
import random
import weakref
from typing import Callable

from ..base import FaultHook, Frames, Packet, Poller, Socket, SocketKind, Transport
from ..clocks import DEFAULT_START, VirtualClock, WallClock
from ..curve import AllowLists
from .log import DeliveryLog
from .scheduler import BusScheduler
from .sockets import MemoryPoller, MemorySocket, endpoint_key


class MemoryBus(Transport):
    """A process-local message bus with ZMQ semantics, a seed and a virtual clock."""

    name = "memory"

    def __init__(self, seed: int = 0, start: _dt.datetime = DEFAULT_START, *,
                 record_deliveries: bool = True, clock: VirtualClock | WallClock | None = None
                 ) -> None:
        self.seed = seed
        # One generator for every choice (who steps, ids, fault draws): the seed fixes all.
        self.random = random.Random(seed)
        # Virtual by default (tests); a WallClock runs a real topology in one process.
        self.clock = clock if clock is not None else VirtualClock(start)
        self.scheduler = BusScheduler(self.clock, self.random, self)
        # Called with every message sent (see `base.FaultHook`); the testing package's
        # fault plan plugs in here.
        self.fault_hook: FaultHook | None = None
        # One line per delivered message: the bus's trace (formatted when read).
        self.deliveries = DeliveryLog()
        self.record_deliveries = record_deliveries
        self.oversized_dropped = 0  # messages over their receiver's max_bytes (MAXMSGSIZE)
        # Called with (from owner, to owner, frames) after each delivery: a simulation's
        # invariants, checked message by message.
        self.delivery_listeners: list[Callable[[str, str, Frames], None]] = []
        # Called with the `Packet` of each delivery (None: no cost); a fault plan's
        # triggers (`after=`, `on=`) watch here.
        self.delivery_hook: Callable[[Packet], None] | None = None
        self._bound: dict[str, MemorySocket] = {}
        self._connecting: dict[str, list[MemorySocket]] = {}
        self._sockets: list[MemorySocket] = []
        # (due, order, from, to, frames) of a delayed message; (due, order, None, None,
        # callback) of a scheduled call
        self._delayed: list[tuple] = []
        # (from owner, to owner, to kind) -> the sockets, for packets a fault plan held back
        self._links: dict[tuple[str, str, SocketKind], tuple[MemorySocket, MemorySocket]] = {}
        self._pollers: weakref.WeakSet[MemoryPoller] = weakref.WeakSet()
        self._sequence = itertools.count()
        self._identities = itertools.count(1)
        self._ports = itertools.count(49152)
        self.allow_lists = AllowLists()
        # (server owner, client owner) of every link the CurveZMQ handshake refused
        self.refused: list[tuple[str, str]] = []

    # -- the Transport interface ---------------------------------------------------------
    def socket(self, kind: SocketKind, *, owner: str, hwm: int = 1000,
               max_bytes: int | None = None) -> Socket:
        socket = MemorySocket(self, kind, owner, hwm, max_bytes)
        self._sockets.append(socket)
        return socket

    def poller(self, *, owner: str) -> Poller:
        poller = MemoryPoller(self, owner)
        self._pollers.add(poller)
        return poller

    def mark_crashed(self, service: str) -> None:
        """Marks the open sockets and pollers of `service` as crashed, before it closes them:
        code of it still running (a handler waiting on a request, `main`) is unwound by
        `ServiceCrashed` instead of going on with closed sockets."""
        prefix = service + "."
        for socket in self._sockets:
            if socket.owner.startswith(prefix):
                socket.crashed = True
        for poller in list(self._pollers):
            if poller.owner == service or poller.owner.startswith(prefix):
                poller.crashed = True

    def new_id(self) -> str:
        return f"{self.random.getrandbits(64):016x}"

    def open_sockets(self) -> list[MemorySocket]:
        return [socket for socket in self._sockets if not socket.closed]

    # -- driving it (shorthands for the scheduler's) --------------------------------------
    def run_until_idle(self) -> int:
        """Runs every service until none has input or a due timer; time does not move."""
        return self.scheduler.run_until_idle()

    def advance(self, seconds: float) -> None:
        """Moves time forward, running every delivery and timer due on the way."""
        self.scheduler.advance(seconds)

    # -- wiring --------------------------------------------------------------------------
    def _bind(self, socket: MemorySocket, endpoint: str) -> str:
        if endpoint.endswith(":*"):
            endpoint = f"{endpoint[:-1]}{next(self._ports)}"
        key = endpoint_key(endpoint)
        holder = self._bound.get(key)
        if holder is not None:
            raise OSError(f"memory bus: {endpoint} is already bound by {holder.owner}")
        self._bound[key] = socket
        socket.bound.append(key)
        for peer in self._connecting.get(key, []):
            self._link(socket, peer)
        return endpoint

    def _connect(self, socket: MemorySocket, endpoint: str) -> None:
        key = endpoint_key(endpoint)
        socket.connected.append(key)
        self._connecting.setdefault(key, []).append(socket)
        bound = self._bound.get(key)
        if bound is not None:
            self._link(bound, socket)

    def _link(self, a: MemorySocket, b: MemorySocket) -> None:
        if (a.curve is not None or b.curve is not None) and not self._handshake(a, b):
            return  # as in ZMQ: the peer is never linked, nothing crosses either way
        a.peers.append(b)
        b.peers.append(a)
        for sub, pub in ((a, b), (b, a)):
            if sub.kind is SocketKind.SUB and pub.kind is SocketKind.XPUB:
                for topic in sub.subscriptions:
                    if pub.verbose or not any(topic in peer.subscriptions
                                              for peer in pub.peers if peer is not sub):
                        pub.inbox.append([b"\x01" + topic])
                        self.scheduler.input_for(pub)
        for dealer, peer in ((a, b), (b, a)):
            while dealer.kind is SocketKind.DEALER and dealer.unsent:
                self._transmit(dealer, peer, [dealer.identity, *dealer.unsent.popleft()])

    def _handshake(self, a: MemorySocket, b: MemorySocket) -> bool:
        """ZMQ's security handshake between a bound socket `a` and a connecting one `b`.

        Plain meets plain; otherwise one side must be a CURVE server and the other a
        CURVE client that expects that server's public key and is on its allow-list.
        A plain peer of a CURVE socket (either way) fails, as a mechanism mismatch does.
        """
        if a.curve is None or b.curve is None or a.curve.server == b.curve.server:
            self.refused.append((a.owner, b.owner))
            return False
        server, client = (a, b) if a.curve.server else (b, a)
        if client.curve.server_public != server.curve.public or not self.allow_lists.allows(
                server.curve.domain, client.curve.public):
            self.refused.append((server.owner, client.owner))
            return False
        return True

    def _unlink(self, a: MemorySocket, b: MemorySocket) -> None:
        if b in a.peers:
            a.peers.remove(b)
        if a in b.peers:
            b.peers.remove(a)
        if a.kind is SocketKind.SUB and b.kind is SocketKind.XPUB and not b.closed:
            for topic in a.subscriptions:
                b.inbox.append([b"\x00" + topic])
                self.scheduler.input_for(b)

    def _close(self, socket: MemorySocket) -> None:
        for peer in list(socket.peers):
            self._unlink(socket, peer)
        for key in socket.bound:
            if self._bound.get(key) is socket:
                del self._bound[key]
        for key in socket.connected:
            waiting = self._connecting.get(key, [])
            if socket in waiting:
                waiting.remove(socket)
        socket.inbox.clear()
        self._sockets.remove(socket)
        if self._links:
            self._links = {key: pair for key, pair in self._links.items() if socket not in pair}

    # -- delivery ------------------------------------------------------------------------
    def _transmit(self, src: MemorySocket, dst: MemorySocket, frames: Frames) -> bool:
        hook = self.fault_hook
        if hook is None:  # the common case: no fault to apply
            return self._deliver(src, dst, frames)
        self._links[(src.owner, dst.owner, dst.kind)] = (src, dst)
        copies = hook(Packet(src.owner, dst.owner, src.kind, dst.kind, frames))
        delivered = True
        for delay, body in copies:
            if delay > 0:
                heapq.heappush(self._delayed, (self.clock.monotonic() + delay,
                                               next(self._sequence), src, dst, body))
            else:
                delivered = self._deliver(src, dst, body) and delivered
        return delivered

    def _deliver(self, src: MemorySocket, dst: MemorySocket, frames: Frames) -> bool:
        if dst.closed or dst not in src.peers and not src.closed:
            return False
        if len(dst.inbox) >= dst.hwm:
            return False  # the high-water mark: ZMQ drops (PUB) or refuses (DEALER)
        if dst.max_bytes is not None and len(frames[-1]) > dst.max_bytes:
            # ZMQ_MAXMSGSIZE: libzmq drops it (and the connection) unread; the sender is
            # not told. The body is the frame that can be large (topics and ids are short).
            self.oversized_dropped += 1
            return True
        if not dst.inbox:
            dst.readable_since = self.clock.monotonic()
        dst.inbox.append(frames)
        if dst.pollers:
            self.scheduler.input_for(dst)
        if self.record_deliveries:
            self.deliveries.record(self.clock.monotonic(), src.owner, dst.owner, frames)
        if self.delivery_listeners:
            for listener in self.delivery_listeners:
                listener(src.owner, dst.owner, frames)
        if self.delivery_hook is not None:
            self.delivery_hook(Packet(src.owner, dst.owner, src.kind, dst.kind, frames))
        return True

    # -- the timed queue -------------------------------------------------------------------
    def call_at(self, t: float, callback: Callable[[], None]) -> int:
        """Runs `callback()` once virtual time reaches `t` (a time already past: the current
        instant), before the next service steps and after what was queued for that time
        before it; returns a handle for `cancel`."""
        order = next(self._sequence)
        heapq.heappush(self._delayed, (max(t, self.clock.monotonic()), order, None, None,
                                       callback))
        return order

    def cancel(self, handle: int) -> bool:
        """Forgets a call queued by `call_at`; False when it ran (or was forgotten) already."""
        for index, entry in enumerate(self._delayed):
            if entry[1] == handle and entry[2] is None:
                self._delayed.pop(index)
                heapq.heapify(self._delayed)
                return True
        return False

    def next_delivery(self) -> float | None:
        """When the next delayed message or scheduled call is due, or None."""
        return self._delayed[0][0] if self._delayed else None

    def deliver_due(self) -> None:
        """Delivers the delayed messages and runs the scheduled calls whose time has come."""
        now = self.clock.monotonic()
        while self._delayed and self._delayed[0][0] <= now:
            _, _, src, dst, payload = heapq.heappop(self._delayed)
            if src is None:
                payload()
            elif not dst.closed:
                self._deliver(src, dst, payload)
            now = self.clock.monotonic()  # a call may have moved time (a blocking restart)

    def flush_delayed(self) -> None:
        """Delivers every delayed message now, in the order they were due (a plan's heal);
        scheduled calls stay queued."""
        messages = sorted(entry for entry in self._delayed if entry[2] is not None)
        self._delayed = [entry for entry in self._delayed if entry[2] is None]
        heapq.heapify(self._delayed)
        for _, _, src, dst, frames in messages:
            if not dst.closed:
                self._deliver(src, dst, frames)

    def deliver_held(self, src: str, dst: str, dst_kind: SocketKind, frames: Frames) -> bool:
        """Delivers a packet a fault plan held back on the link `src`->`dst` now."""
        sockets = self._links.get((src, dst, dst_kind))
        return sockets is not None and self._deliver(sockets[0], sockets[1], frames)


_default: MemoryBus | None = None


def default_bus() -> MemoryBus:
    """The process-wide bus that `transport='memory'` means."""
    global _default
    if _default is None:
        # A production topology in one process: no delivery log growing without bound.
        _default = MemoryBus(record_deliveries=False)
    return _default
