"""The memory transport: a deterministic, single-threaded bus with virtual time.

It keeps the ZMQ semantics a service can observe — a publisher with no subscriber drops,
topic filters match by prefix (the subscriber then checks the exact topic), per-link order
is kept, high-water marks drop, a request with no replyer times out — while a seed fixes
every choice (which service steps next, which message a fault hits) and a virtual clock
drives every deadline. Services are stepped by the bus, never by threads of their own.
"""

from __future__ import annotations

import datetime as _dt
import heapq
import itertools
import random
from typing import Any, Callable, Sequence

from ._memory_sockets import MemoryPoller, MemorySocket, endpoint_key
from .base import Frames, Poller, Socket, SocketKind, Transport
from .clocks import DEFAULT_START, VirtualClock, WallClock
from .curve import AllowLists
from .faults import Faults, Packet

__all__ = ["MemoryBus", "MemorySocket", "MemoryPoller", "VirtualClock", "WallClock",
           "DEFAULT_START", "default_bus"]
# Steps without a pause before run_until_idle concludes services are ping-ponging forever.
SETTLE_LIMIT = 1_000_000


class DeliveryLog(Sequence[str]):
    """The bus's trace: one line per delivered message, `"<t> <from>-><to> <frames hex>"`.

    Delivering only keeps a reference to the frames (bytes, never changed once sent);
    lines are formatted when read, so recording costs the hot path almost nothing.
    """

    def __init__(self) -> None:
        self._entries: list[tuple[float, str, str, Frames]] = []
        self._lines: list[str] = []

    def record(self, t: float, src: str, dst: str, frames: Frames) -> None:
        self._entries.append((t, src, dst, frames))

    def _format(self) -> list[str]:
        lines, entries = self._lines, self._entries
        for t, src, dst, frames in entries[len(lines):]:
            lines.append(f"{t:.6f} {src}->{dst} " + " ".join(
                frame.hex() if len(frame) <= 64 else f"{len(frame)}B:" + frame[:32].hex()
                for frame in frames))
        return lines

    def __len__(self) -> int:
        return len(self._entries)

    def __getitem__(self, index):  # type: ignore[override]
        return self._format()[index]

    def __iter__(self):
        return iter(list(self._format()))

    def __eq__(self, other: object) -> bool:
        return list(self) == list(other) if isinstance(other, (list, DeliveryLog)) else False

    def __repr__(self) -> str:
        return f"DeliveryLog({len(self)} deliveries)"

    def clear(self) -> None:
        self._entries.clear()
        self._lines.clear()


class MemoryBus(Transport):
    """A process-local message bus with ZMQ semantics, a seed and a virtual clock."""

    name = "memory"

    def __init__(self, seed: int = 0, start: _dt.datetime = DEFAULT_START, *,
                 record_deliveries: bool = True, clock: VirtualClock | WallClock | None = None
                 ) -> None:
        self.seed = seed
        self.random = random.Random(seed)
        # Virtual by default (tests); a WallClock runs a real topology in one process.
        self.clock = clock if clock is not None else VirtualClock(start)
        self.runtimes: list[Any] = []
        self.faults = Faults(self)
        # One line per delivered message: the bus's trace (formatted when read).
        self.deliveries = DeliveryLog()
        self.record_deliveries = record_deliveries
        self._bound: dict[str, MemorySocket] = {}
        self._connecting: dict[str, list[MemorySocket]] = {}
        self._sockets: list[MemorySocket] = []
        self._delayed: list[tuple[float, int, MemorySocket, MemorySocket, Frames]] = []
        self._sequence = itertools.count()
        self._identities = itertools.count(1)
        self._ports = itertools.count(49152)
        self._crashed: dict[str, Any] = {}
        self.allow_lists = AllowLists()
        # (server owner, client owner) of every link the CurveZMQ handshake refused
        self.refused: list[tuple[str, str]] = []
        self.restart_listeners: list[Callable[[Any, Any], None]] = []

    @property
    def drives_runtimes(self) -> bool:
        return True

    # -- the Transport interface ---------------------------------------------------------
    def socket(self, kind: SocketKind, *, owner: str, hwm: int = 1000) -> Socket:
        socket = MemorySocket(self, kind, owner, hwm)
        self._sockets.append(socket)
        return socket

    def poller(self, *, owner: str) -> Poller:
        return MemoryPoller(self, owner)

    def new_id(self) -> str:
        return f"{self.random.getrandbits(64):016x}"

    def attach(self, runtime: Any) -> None:
        if runtime not in self.runtimes:
            self.runtimes.append(runtime)

    def detach(self, runtime: Any) -> None:
        if runtime in self.runtimes:
            self.runtimes.remove(runtime)

    def open_sockets(self) -> list[MemorySocket]:
        return [socket for socket in self._sockets if not socket.closed]

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
                    pub.inbox.append([b"\x01" + topic])
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

    # -- delivery ------------------------------------------------------------------------
    def _transmit(self, src: MemorySocket, dst: MemorySocket, frames: Frames) -> bool:
        if not self.faults.rules:  # the common case: no fault to apply
            return self._deliver(src, dst, frames)
        copies = self.faults.apply(Packet(src, dst, frames))
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
        dst.inbox.append(frames)
        if self.record_deliveries:
            self.deliveries.record(self.clock.monotonic(), src.owner, dst.owner, frames)
        return True

    def _deliver_due(self) -> None:
        now = self.clock.monotonic()
        while self._delayed and self._delayed[0][0] <= now:
            _, _, src, dst, frames = heapq.heappop(self._delayed)
            if not dst.closed:
                self._deliver(src, dst, frames)

    # -- driving services ----------------------------------------------------------------
    def _runnable(self) -> list[Any]:
        now = self.clock.monotonic()
        found = []
        for runtime in self.runtimes:
            if runtime.in_step or runtime.closed or runtime.stop_requested:
                continue
            if any(socket.inbox for socket in runtime.poller.sockets):
                found.append(runtime)
                continue
            deadline = runtime.next_deadline()
            if deadline is not None and deadline <= now:
                found.append(runtime)
        return found

    def run_one(self) -> bool:
        """Steps one service that has input or a due timer; False when none has."""
        self._deliver_due()
        runnable = self._runnable()
        if not runnable:
            return False
        runtime = runnable[0] if len(runnable) == 1 else self.random.choice(runnable)
        runtime.step(0)
        return True

    def next_event(self) -> float | None:
        """When something happens next without outside input: a delivery or a timer."""
        times = [self._delayed[0][0]] if self._delayed else []
        for runtime in self.runtimes:
            if not (runtime.in_step or runtime.closed or runtime.stop_requested):
                deadline = runtime.next_deadline()
                if deadline is not None:
                    times.append(deadline)
        return min(times) if times else None

    def run_until_idle(self) -> int:
        """Runs every service until none has input or a due timer; time does not move."""
        steps = 0
        while self.run_one():
            steps += 1
            if steps > SETTLE_LIMIT:
                raise RuntimeError("memory bus: services kept each other busy for "
                                   f"{SETTLE_LIMIT} steps without settling")
        return steps

    def advance(self, seconds: float) -> None:
        """Moves virtual time forward, running every delivery and timer due on the way."""
        target = self.clock.monotonic() + seconds
        while True:
            self.run_until_idle()
            upcoming = self.next_event()
            if upcoming is None or upcoming > target:
                break
            self.clock.wait_until(upcoming)
        self.clock.wait_until(target)
        self.run_until_idle()

    def wait_for(self, ready: Callable[[], list], timeout_s: float | None) -> list:
        """Runs the bus until `ready()` returns something or `timeout_s` of virtual time pass."""
        deadline = None if timeout_s is None else self.clock.monotonic() + timeout_s
        while True:
            found = ready()
            if found:
                return found
            if self.run_one():
                continue
            upcoming = self.next_event()
            if upcoming is None or (deadline is not None and upcoming > deadline):
                if deadline is not None:
                    self.clock.wait_until(deadline)
                self._deliver_due()
                return ready()
            self.clock.wait_until(upcoming)

    def run_until_stopped(self, runtime: Any) -> None:
        """A blocking run on the bus: serve until stopped or nothing can happen any more."""
        while not runtime.stop_requested:
            if self.run_one():
                continue
            upcoming = self.next_event()
            if upcoming is None and self.clock.virtual:
                break  # in virtual time nothing can happen any more
            self.clock.wait_until(upcoming)  # on a wall clock: asleep until due or woken
        runtime.step(0)  # delivers pending signals

    # -- crash and restart ---------------------------------------------------------------
    def crash(self, name: str) -> None:
        """Kills a service abruptly: sockets closed, queued messages lost, no drain."""
        runtime = self.runtime(name)
        self.detach(runtime)
        runtime.close()
        self._crashed[name] = runtime

    def restart(self, name: str) -> Any:
        """Starts a crashed service again from its definition (a new epoch for its states)."""
        from ..runtime import Runtime

        old = self._crashed.pop(name)
        new = Runtime(old.definition, self, max_message_bytes=old.max_message_bytes,
                      drain_s=old.drain_s)
        new.sent_listeners = old.sent_listeners
        new.event_listeners = old.event_listeners
        new.open()
        new.init()
        self.attach(new)
        for listener in self.restart_listeners:
            listener(old, new)
        return new

    def runtime(self, name: str) -> Any:
        for runtime in self.runtimes:
            if runtime.name == name:
                return runtime
        raise KeyError(f"no service named {name!r} on this bus")


_default: MemoryBus | None = None


def default_bus() -> MemoryBus:
    """The process-wide bus that `transport='memory'` means."""
    global _default
    if _default is None:
        # A production topology in one process: no delivery log growing without bound.
        _default = MemoryBus(record_deliveries=False)
    return _default
