"""Sockets and pollers of the memory bus (see `bus.py`), with ZMQ's semantics."""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Collection, NamedTuple, Sequence

from ...errors import ServiceCrashed
from ..base import Frames, Poller, Socket, SocketKind

if TYPE_CHECKING:
    from .bus import MemoryBus

_LOCAL_HOSTS = {"*", "0.0.0.0", "127.0.0.1", "localhost", "::1", "[::1]", ""}


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
    def __init__(self, bus: "MemoryBus", kind: SocketKind, owner: str, hwm: int,
                 max_bytes: int | None = None) -> None:
        self.bus = bus
        self.kind = kind
        self.owner = owner
        self.hwm = hwm
        self.max_bytes = max_bytes
        self.identity = b"\x00sf%d" % next(bus._identities)
        self.inbox: deque[Frames] = deque()
        self.readable_since = float("-inf")  # when the inbox last stopped being empty
        self.peers: list[MemorySocket] = []
        self.subscriptions: list[bytes] = []
        self.verbose = True  # XPUB: every subscription reaches recv (see quiet_subscriptions)
        self.pollers: list[MemoryPoller] = []  # told when input arrives (the bus's ready set)
        self.bound: list[str] = []
        self.connected: list[str] = []
        self.unsent: deque[Frames] = deque()  # a DEALER's messages before any peer exists
        self._next_peer = 0
        self._closed = False
        self.crashed = False  # closed by a crash (`MemoryBus.mark_crashed`)
        self.curve: CurveRole | None = None

    def bind(self, endpoint: str) -> str:
        return self.bus._bind(self, endpoint)

    def connect(self, endpoint: str) -> None:
        self.bus._connect(self, endpoint)

    def send(self, frames: Frames) -> bool:
        if self._closed:
            if self.crashed:
                raise ServiceCrashed(self.owner)
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
            peers = self.peers
            if not peers:
                if len(self.unsent) >= self.hwm:
                    return False
                self.unsent.append(frames)
                return True
            # Round-robin, skipping a peer whose queue is full (ZMQ's load balancer does);
            # False (EAGAIN) only when every peer is full.
            count = len(peers)
            for offset in range(count):
                peer = peers[(self._next_peer + offset) % count]
                if len(peer.inbox) < peer.hwm:
                    self._next_peer += offset + 1
                    return self.bus._transmit(self, peer, [self.identity, *frames])
            return False
        if kind is SocketKind.ROUTER:
            identity, body = frames[0], frames[1:]
            for peer in self.peers:
                if peer.identity == identity:
                    self.bus._transmit(self, peer, body)
                    break
            # ZMQ ROUTER drops what it cannot route (a vanished peer) or what a full peer
            # cannot take, silently: the send succeeds either way.
            return True
        if kind is SocketKind.XPUB:
            # PUB semantics: each subscriber whose topic matches gets a copy; a subscriber
            # whose queue is full loses its copy, silently, and the others are not held
            # up. The send succeeds either way (ZMQ tells the sender of no drop; a drop is
            # seen where it lands: a state's in side finds a seq gap).
            topic = frames[0]
            for peer in self.peers:
                for prefix in peer.subscriptions:
                    if topic.startswith(prefix):
                        self.bus._transmit(self, peer, frames)
                        break
            return True
        raise OSError(f"{kind.value} sockets do not send here")

    def recv(self) -> Frames | None:
        return self.inbox.popleft() if self.inbox else None

    def quiet_subscriptions(self) -> None:
        self.verbose = False

    def subscribe(self, topic: bytes) -> None:
        self.subscriptions.append(bytes(topic))
        for peer in self.peers:
            peer.inbox.append([b"\x01" + topic])
            self.bus.scheduler.input_for(peer)

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
        self.crashed = False  # its service crashed: a wait in progress ends, unwinding it

    def register(self, socket: Socket) -> None:
        if socket not in self.sockets:
            self.sockets.append(socket)  # type: ignore[arg-type]
            socket.pollers.append(self)  # type: ignore[attr-defined]
            if socket.inbox:  # type: ignore[attr-defined]
                self.bus.scheduler.input_for(socket)

    def unregister(self, socket: Socket) -> None:
        if socket in self.sockets:
            self.sockets.remove(socket)  # type: ignore[arg-type]
            socket.pollers.remove(self)  # type: ignore[attr-defined]

    def ready(self) -> list[MemorySocket]:
        return [socket for socket in self.sockets if socket.inbox]

    def poll(self, timeout_s: float | None) -> Sequence[Socket]:
        ready = self.ready()
        if ready or (timeout_s is not None and timeout_s <= 0):
            return ready
        clock = self.bus.clock
        deadline = None if timeout_s is None else clock.monotonic() + timeout_s
        found = self.bus.scheduler.wait_for(self._ready_or_crashed, timeout_s)
        if self.crashed:
            raise ServiceCrashed(self.owner)
        if found and deadline is not None and clock.monotonic() > deadline:
            # A step run during the wait slept past its deadline (virtual time): input
            # that arrived after the deadline came too late, as ZeroMQ's poll would have
            # returned empty then; input that arrived before it (a service served while
            # another slept) is ready.
            found = [socket for socket in found if socket.readable_since <= deadline]
        return found

    def _ready_or_crashed(self) -> list:
        return [self] if self.crashed else self.ready()

    def has_input(self) -> bool:
        for socket in self.sockets:
            if socket.inbox:
                return True
        return False

    def wake(self) -> None:
        """Interrupts a wall-clock bus asleep in a blocking run (virtual time: no-op)."""
        self.bus.clock.wake()

    def close(self) -> None:
        for socket in self.sockets:
            if self in socket.pollers:
                socket.pollers.remove(self)
        self.sockets.clear()
