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
from collections import deque
from typing import Any, Callable, Collection, NamedTuple, Sequence

from .base import Clock, Frames, Poller, Socket, SocketKind, Transport
from .curve import AllowLists
from .faults import Faults, Packet

DEFAULT_START = _dt.datetime(2030, 1, 1, tzinfo=_dt.timezone.utc)
_LOCAL_HOSTS = {"*", "0.0.0.0", "127.0.0.1", "localhost", "::1", "[::1]", ""}
# Steps without a pause before run_until_idle concludes services are ping-ponging forever.
SETTLE_LIMIT = 1_000_000


class VirtualClock(Clock):
    """Time that moves only when the bus moves it; `now()` is `start` plus elapsed time."""

    def __init__(self, start: _dt.datetime = DEFAULT_START) -> None:
        if start.tzinfo is None:
            start = start.replace(tzinfo=_dt.timezone.utc)
        self.start = start
        self._elapsed = 0.0
        self.listeners: list[Callable[[_dt.datetime], None]] = []

    def monotonic(self) -> float:
        return self._elapsed

    def now(self) -> _dt.datetime:
        return self.start + _dt.timedelta(seconds=self._elapsed)

    def set(self, elapsed: float) -> None:
        if elapsed > self._elapsed:
            self._elapsed = elapsed
            if self.listeners:
                now = self.now()
                for listener in self.listeners:
                    listener(now)


def endpoint_key(endpoint: str) -> str:
    """Binding `tcp://*:5555` and connecting `tcp://127.0.0.1:5555` meet on one key."""
    scheme, _, rest = endpoint.partition("://")
    if scheme == "tcp":
        host, _, port = rest.rpartition(":")
        if host in _LOCAL_HOSTS:
            return f"tcp://local:{port}"
    return endpoint


class CurveRole(NamedTuple):
    """A socket's CurveZMQ role on the bus. No secret key is kept: the bus needs none."""

    server: bool
    public: bytes
    domain: str | None = None  # servers: whose allow-list applies
    server_public: bytes | None = None  # clients: the server they expect


class MemorySocket(Socket):
    def __init__(self, bus: "MemoryBus", kind: SocketKind, owner: str, hwm: int) -> None:
        self.bus = bus
        self.kind = kind
        self.owner = owner
        self.hwm = hwm
        self.identity = b"\x00sf%d" % next(bus._identities)
        self.inbox: deque[Frames] = deque()
        self.peers: list[MemorySocket] = []
        self.subscriptions: list[bytes] = []
        self.bound: list[str] = []
        self.connected: list[str] = []
        self.unsent: deque[Frames] = deque()  # a DEALER's messages before any peer exists
        self._next_peer = 0
        self._closed = False
        self.curve: CurveRole | None = None

    @property
    def service(self) -> str:
        return self.owner.partition(".")[0]

    @property
    def component(self) -> str:
        return self.owner.partition(".")[2]

    def bind(self, endpoint: str) -> str:
        return self.bus._bind(self, endpoint)

    def connect(self, endpoint: str) -> None:
        self.bus._connect(self, endpoint)

    def send(self, frames: Frames) -> bool:
        if self._closed:
            raise OSError(f"socket {self.owner} is closed")
        # A copy, as ZMQ copies: the caller may reuse its list (or a bytearray) afterwards.
        for frame in frames:
            if frame.__class__ is not bytes:
                frames = [bytes(frame) for frame in frames]
                break
        else:
            frames = list(frames)
        kind = self.kind
        if kind is SocketKind.DEALER:
            if not self.peers:
                if len(self.unsent) >= self.hwm:
                    return False
                self.unsent.append(frames)
                return True
            peer = self.peers[self._next_peer % len(self.peers)]
            self._next_peer += 1
            return self.bus._transmit(self, peer, [self.identity, *frames])
        if kind is SocketKind.ROUTER:
            identity, body = frames[0], frames[1:]
            for peer in self.peers:
                if peer.identity == identity:
                    return self.bus._transmit(self, peer, body)
            return True  # ZMQ ROUTER drops what it cannot route, silently
        if kind is SocketKind.XPUB:
            delivered = True
            topic = frames[0]
            for peer in self.peers:
                for prefix in peer.subscriptions:
                    if topic.startswith(prefix):
                        delivered = self.bus._transmit(self, peer, frames) and delivered
                        break
            return delivered
        raise OSError(f"{kind.value} sockets do not send here")

    def recv(self) -> Frames | None:
        return self.inbox.popleft() if self.inbox else None

    def subscribe(self, topic: bytes) -> None:
        self.subscriptions.append(bytes(topic))
        for peer in self.peers:
            peer.inbox.append([b"\x01" + topic])

    def secure_server(self, public: bytes, secret: bytes, *, domain: str,
                      allowed: Collection[bytes]) -> None:
        self._release_domain()
        self.bus.allow_lists.add(domain, allowed)
        self.curve = CurveRole(True, bytes(public), domain=domain)

    def secure_client(self, public: bytes, secret: bytes, *, server_public: bytes) -> None:
        self._release_domain()
        self.curve = CurveRole(False, bytes(public), server_public=bytes(server_public))

    def _release_domain(self) -> None:
        if self.curve is not None and self.curve.server:
            self.bus.allow_lists.remove(self.curve.domain)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._release_domain()
            self.bus._close(self)

    @property
    def closed(self) -> bool:
        return self._closed


class MemoryPoller(Poller):
    """Readable sockets now; if none, the bus runs other services (in virtual time) until
    one is, or until the deadline — this is how a blocking request is served inline."""

    def __init__(self, bus: "MemoryBus", owner: str) -> None:
        self.bus = bus
        self.owner = owner
        self.sockets: list[MemorySocket] = []

    def register(self, socket: Socket) -> None:
        if socket not in self.sockets:
            self.sockets.append(socket)  # type: ignore[arg-type]

    def unregister(self, socket: Socket) -> None:
        if socket in self.sockets:
            self.sockets.remove(socket)  # type: ignore[arg-type]

    def ready(self) -> list[MemorySocket]:
        return [socket for socket in self.sockets if socket.inbox]

    def poll(self, timeout_s: float | None) -> Sequence[Socket]:
        ready = self.ready()
        if ready or (timeout_s is not None and timeout_s <= 0):
            return ready
        return self.bus.wait_for(self.ready, timeout_s)

    def wake(self) -> None:
        """Single-threaded: a stop request is seen at the next step; nothing to interrupt."""

    def close(self) -> None:
        self.sockets.clear()


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
                 record_deliveries: bool = True) -> None:
        self.seed = seed
        self.random = random.Random(seed)
        self.clock = VirtualClock(start)
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
            if not (runtime.in_step or runtime.closed):
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
            self.clock.set(upcoming)
        self.clock.set(target)
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
                    self.clock.set(deadline)
                self._deliver_due()
                return ready()
            self.clock.set(upcoming)

    def run_until_stopped(self, runtime: Any) -> None:
        """A blocking run on the bus: serve until stopped or nothing can happen any more."""
        while not runtime.stop_requested:
            if self.run_one():
                continue
            upcoming = self.next_event()
            if upcoming is None:
                break
            self.clock.set(upcoming)
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
