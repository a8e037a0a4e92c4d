"""The production transport: real ZeroMQ sockets.

Only `service_framework/transport/` imports `zmq`: this module (sockets, pollers), `zap.py`
(the ZAP authenticator) and `curve.py` (key files).
"""

from __future__ import annotations

import errno
import itertools
import os
import threading
import time
from typing import Collection, Sequence

import zmq
from zmq.utils.monitor import recv_monitor_message

from ..errors import ConfigError
from .base import Frames, Poller, Socket, SocketKind, Transport
from .clocks import WallClock
from .peer_budget import INCOMING_PER_PEER, TRACK_BYTES, PeerBudget
from .threads import ThreadScheduler
from .zap import Zap, zap_for

_ZMQ_TYPES = {
    SocketKind.ROUTER: zmq.ROUTER,
    SocketKind.DEALER: zmq.DEALER,
    SocketKind.XPUB: zmq.XPUB,
    SocketKind.SUB: zmq.SUB,
}

# Bounded linger: pending messages get this long to leave on close, so stop is never stuck.
LINGER_MS = 200
# How long `close` waits for ZMQ's I/O thread to close a bound listener (see `_unbind_all`).
UNBIND_WAIT_S = 0.5
# An XPUB's incoming queue per subscriber, and the longest subscription (a topic) it takes.
SUBSCRIPTIONS_HWM = 100
MAX_SUBSCRIPTION_BYTES = 64 * 1024
# Bodies at least this long are sent without a copy (pyzmq's own default threshold); below
# it a copy is cheaper than tracking a zero-copy frame.
ZERO_COPY_BYTES = 65536
# Plain ints, not pyzmq's enums: an enum's `&` costs about half a microsecond, per message.
_NOBLOCK = int(zmq.NOBLOCK)
_NOBLOCK_SNDMORE = int(zmq.NOBLOCK | zmq.SNDMORE)
_POLLIN = int(zmq.POLLIN)
_zmq_poll = zmq.backend.zmq_poll
_send_frame = zmq.backend.Socket.send  # the C send: pyzmq's wrapper costs 0.3 µs a frame
# What `recv` knows of a socket's queue (see `ZmqSocket.recv`).
_POLLED, _ASK, _DRAIN = 0, 1, 2


class ZmqSocket(Socket):
    __slots__ = ("kind", "owner", "raw", "_recv", "_alone", "_bound", "_zap", "queue", "budget")

    def __init__(self, context: zmq.Context, kind: SocketKind, owner: str, hwm: int,
                 max_bytes: int | None = None) -> None:
        self.kind = kind
        self.owner = owner
        raw = context.socket(_ZMQ_TYPES[kind])
        raw.setsockopt(zmq.LINGER, LINGER_MS)
        raw.setsockopt(zmq.SNDHWM, hwm)
        raw.setsockopt(zmq.RCVHWM, hwm)
        if kind is SocketKind.ROUTER:
            # Requests a peer pipelines wait in its own queue, not here: set now, since a
            # listener takes its options when it binds (`limit_peer_bytes` comes later).
            raw.setsockopt(zmq.RCVHWM, min(hwm, INCOMING_PER_PEER))
        if kind is SocketKind.XPUB:
            # What comes in is subscriptions only: short, and never many at once. A flood of
            # them waits on its sender's side (TCP), not in our pipes, whatever `hwm` says.
            raw.setsockopt(zmq.RCVHWM, SUBSCRIPTIONS_HWM)
            max_bytes = min(max_bytes or MAX_SUBSCRIPTION_BYTES, MAX_SUBSCRIPTION_BYTES)
        if max_bytes is not None:  # before bind/connect: libzmq reads it per connection
            raw.setsockopt(zmq.MAXMSGSIZE, max_bytes)
        if kind is SocketKind.XPUB:
            # Every subscription reaches us (not only the first per topic): we count
            # subscribers for `min_subscribers`. No XPUB_NODROP: with it, one subscriber
            # whose queue is full makes every send fail (EAGAIN) for all subscribers. As
            # PUB, a full subscriber loses its copy and only it; libzmq tells the sender
            # nothing, so such drops are counted where they land (a state's in side sees
            # a seq gap), as on the memory bus.
            raw.setsockopt(zmq.XPUB_VERBOSE, 1)
        self.raw = raw
        # Frame by frame rather than send_multipart/recv_multipart: those re-check every
        # part in Python and ask for RCVMORE with one more call per frame, which costs
        # more than the message itself on a small request (see benchmarks/run.py).
        self._recv = raw.recv
        self._alone = [(raw, _POLLIN)]  # this socket's own poll item
        self._bound: list[str] = []
        self._zap: tuple[Zap, str] | None = None
        self.queue = _DRAIN
        self.budget: PeerBudget | None = None  # ROUTER replies, per peer (limit_peer_bytes)

    def _ipv6(self, endpoint: str) -> None:
        if endpoint.startswith("tcp://["):  # an IPv6 address (SPEC §5): libzmq's opt-in
            self.raw.setsockopt(zmq.IPV6, 1)

    def bind(self, endpoint: str) -> str:
        self._ipv6(endpoint)
        try:
            self.raw.bind(endpoint)
        except zmq.ZMQError as error:
            raise ConfigError(f"{self.owner}: cannot bind {shown(endpoint)}: "
                              f"{_endpoint_problem(error, endpoint)}") from None
        bound = self.raw.getsockopt(zmq.LAST_ENDPOINT).decode()
        self._bound.append(bound)
        return bound

    def quiet_subscriptions(self) -> None:
        if self.kind is SocketKind.XPUB:
            self.raw.setsockopt(zmq.XPUB_VERBOSE, 0)

    def connect(self, endpoint: str) -> None:
        self._ipv6(endpoint)
        try:
            self.raw.connect(endpoint)
        except zmq.ZMQError as error:
            raise ConfigError(f"{self.owner}: cannot connect to {shown(endpoint)}: "
                              f"{_endpoint_problem(error, endpoint)}") from None

    def limit_peer_bytes(self, max_bytes: int) -> None:
        if self.kind is SocketKind.ROUTER:
            self.budget = PeerBudget(max_bytes)

    def send(self, frames: Frames) -> bool:
        raw = self.raw
        last = len(frames) - 1
        budget = self.budget
        if budget is not None and len(frames[last]) >= TRACK_BYTES:
            return self._send_tracked(budget, frames)
        try:
            if len(frames[last]) >= ZERO_COPY_BYTES:
                self.raw.send_multipart(frames, _NOBLOCK, copy=False)
                return True
            # EAGAIN (HWM, no peer) comes on the first part: a message goes whole or not.
            for index in range(last):
                _send_frame(raw, frames[index], _NOBLOCK_SNDMORE)
            _send_frame(raw, frames[last], _NOBLOCK)
        except zmq.Again:
            return False
        return True

    def _send_tracked(self, budget: PeerBudget, frames: Frames) -> bool:
        identity, size = bytes(frames[0]), len(frames[-1])
        if not budget.admits(identity, size):
            return False
        try:
            tracker = self.raw.send_multipart(frames, _NOBLOCK, copy=False, track=True)
        except zmq.Again:
            return False
        budget.track(identity, tracker, size)
        return True

    def recv(self) -> Frames | None:
        """The next message, or None.

        An empty queue costs pyzmq an exception (EAGAIN), more than a small message. So
        after a poll said "readable", the first call receives; the second asks ZMQ
        whether more is queued (no exception when not, the usual case of one request per
        wake-up); if more was, the rest of the batch receives until EAGAIN as before.
        """
        queue = self.queue
        if queue == _POLLED:
            self.queue = _ASK
        elif queue == _ASK:
            if not _zmq_poll(self._alone, 0):  # (asking ZMQ_EVENTS makes pyzmq build an enum)
                return None
            self.queue = _DRAIN
        recv = self._recv
        try:
            frame = recv(_NOBLOCK, copy=False)  # `more` comes with the frame, read in C
        except zmq.Again:
            return None
        frames = [frame.bytes]
        while frame.more:  # the other parts of a message arrive with its first part
            frame = recv(_NOBLOCK, copy=False)
            frames.append(frame.bytes)
        return frames

    def subscribe(self, topic: bytes) -> None:
        self.raw.setsockopt(zmq.SUBSCRIBE, topic)

    def secure_server(self, public: bytes, secret: bytes, *, domain: str,
                      allowed: Collection[bytes]) -> None:
        raw = self.raw
        self._release_zap()
        zap = zap_for(raw.context)
        zap.acquire(domain, allowed)  # the handler runs before any client can connect
        self._zap = (zap, domain)
        # Without a ZAP handler libzmq would let any client that knows our public key in;
        # enforcing the domain makes a missing handler refuse everyone instead.
        raw.setsockopt(zmq.ZAP_ENFORCE_DOMAIN, 1)
        raw.setsockopt(zmq.ZAP_DOMAIN, domain.encode())
        raw.setsockopt(zmq.CURVE_SERVER, 1)
        raw.setsockopt(zmq.CURVE_PUBLICKEY, public)
        raw.setsockopt(zmq.CURVE_SECRETKEY, secret)

    def secure_client(self, public: bytes, secret: bytes, *, server_public: bytes) -> None:
        raw = self.raw
        raw.setsockopt(zmq.CURVE_SERVERKEY, server_public)
        raw.setsockopt(zmq.CURVE_PUBLICKEY, public)
        raw.setsockopt(zmq.CURVE_SECRETKEY, secret)

    def close(self) -> None:
        if not self.raw.closed:
            self._unbind_all()
            self.raw.close(linger=LINGER_MS)
            self._release_zap()

    def _release_zap(self) -> None:
        if self._zap is not None:
            zap, domain = self._zap
            self._zap = None
            zap.release(domain)

    def _unbind_all(self) -> None:
        """Unbinds, and returns once ZMQ has closed the listeners: the ports are free then.

        `zmq_close` closes listeners later, on the I/O thread, so a port could still be taken
        right after `close()` returned (a restart on the same address then failed with
        EADDRINUSE). Waiting for EVENT_CLOSED on a socket monitor removes that race.
        """
        listeners = [e for e in self._bound if e.startswith(("tcp://", "ipc://"))]
        self._bound.clear()
        if not listeners:
            return
        monitor = self.raw.get_monitor_socket(zmq.EVENT_CLOSED)
        try:
            unbound = 0
            for endpoint in listeners:
                try:
                    self.raw.unbind(endpoint)
                    unbound += 1
                except zmq.ZMQError:
                    pass
            deadline = time.monotonic() + UNBIND_WAIT_S
            closed = 0
            while closed < unbound:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not monitor.poll(int(remaining * 1000) + 1):
                    break
                if recv_monitor_message(monitor)["event"] == zmq.EVENT_CLOSED:
                    closed += 1
        finally:
            self.raw.disable_monitor()
            monitor.close(linger=0)

    @property
    def closed(self) -> bool:
        return self.raw.closed


class ZmqPoller(Poller):
    """zmq.Poller plus a self-pipe, so another thread or a signal handler can wake it."""

    def __init__(self) -> None:
        self._poller = zmq.Poller()
        self._by_raw: dict[zmq.Socket, ZmqSocket] = {}
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._poller.register(self._wake_r, zmq.POLLIN)
        self._closed = False

    def register(self, socket: Socket) -> None:
        assert isinstance(socket, ZmqSocket)
        self._by_raw[socket.raw] = socket
        self._poller.register(socket.raw, _POLLIN)

    def unregister(self, socket: Socket) -> None:
        assert isinstance(socket, ZmqSocket)
        if self._by_raw.pop(socket.raw, None) is not None:
            self._poller.unregister(socket.raw)

    def poll(self, timeout_s: float | None) -> Sequence[Socket]:
        timeout_ms = None if timeout_s is None else max(0, int(timeout_s * 1000 + 0.999))
        try:
            events = self._poller.poll(timeout_ms)
        except zmq.ZMQError as error:
            if error.errno == zmq.EINTR:  # a signal: the caller re-checks its flags
                return ()
            raise
        ready = []
        for raw, _ in events:
            if raw == self._wake_r:
                self._drain_wake_pipe()
            else:
                socket = self._by_raw[raw]
                socket.queue = _POLLED
                ready.append(socket)
        return ready

    def _drain_wake_pipe(self) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass

    @property
    def wakeup_fd(self) -> int:
        """The write end of the wake pipe: a byte written to it wakes `poll`."""
        return self._wake_w

    def wake(self) -> None:
        if self._closed:  # its descriptors may belong to another file by now
            return
        try:
            os.write(self._wake_w, b"\0")
        except (BlockingIOError, OSError):
            pass  # pipe full (a wake is already pending) or closed during shutdown

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            os.close(self._wake_r)
            os.close(self._wake_w)


class ZmqTransport(Transport):
    """Real sockets on the process-wide ZMQ context. Many services may share one; each
    loops on a thread of its own (`ThreadScheduler`)."""

    name = "zmq"

    def __init__(self, context: zmq.Context | None = None) -> None:
        self.context = context or zmq.Context.instance()
        self.clock = WallClock()
        self.scheduler = ThreadScheduler()
        self._lock = threading.Lock()
        # Ids (workflow ids, epochs): a random prefix per transport and a counter, unique
        # like uuid4().hex (32 hex digits) at a tenth of its cost; every to_send made
        # outside a handler needs one. next() on itertools.count is atomic under the GIL.
        self._id_prefix = os.urandom(8).hex()
        self._id_counter = itertools.count(int.from_bytes(os.urandom(4), "big"))

    def new_id(self) -> str:
        return f"{self._id_prefix}{next(self._id_counter):016x}"

    def socket(self, kind: SocketKind, *, owner: str, hwm: int = 1000,
               max_bytes: int | None = None) -> Socket:
        with self._lock:  # context.socket is thread-safe; the lock keeps option setting tidy
            return ZmqSocket(self.context, kind, owner, hwm, max_bytes)

    def poller(self, *, owner: str) -> Poller:
        return ZmqPoller()


# What libzmq's errno means for an endpoint from an addresses file, said for its reader.
_ENDPOINT_PROBLEMS = {
    errno.EADDRINUSE: "address already in use (another process listens there)",
    errno.EADDRNOTAVAIL: "address not on this machine (bind to one of its addresses, or *)",
    errno.ENODEV: "cannot resolve the host or interface (a bind takes an address of this "
                  "machine, an interface name or *)",
    errno.ENAMETOOLONG: "ipc path too long",
    errno.EPROTONOSUPPORT: "unknown transport (expected tcp://, ipc:// or inproc://)",
}
# The longest ipc path (sun_path of sockaddr_un, less its terminating NUL).
MAX_IPC_PATH = 107


def _endpoint_problem(error: zmq.ZMQError, endpoint: str) -> str:
    if endpoint.startswith("ipc://"):
        if error.errno == errno.ENOENT:
            return "the ipc path's folder does not exist"
        if error.errno == errno.ENAMETOOLONG or len(endpoint) - 6 > MAX_IPC_PATH:
            return f"ipc path too long ({len(endpoint) - 6} bytes; at most {MAX_IPC_PATH})"
    return _ENDPOINT_PROBLEMS.get(error.errno) or error.strerror or str(error)


def shown(endpoint: str) -> str:
    """An endpoint for an error line: an addresses file may hold one of any length."""
    if len(endpoint) <= MAX_SHOWN:
        return endpoint
    return f"{endpoint[:MAX_SHOWN]}... ({len(endpoint) - MAX_SHOWN} more characters cut)"


MAX_SHOWN = 200


_default: ZmqTransport | None = None


def default_zmq_transport() -> ZmqTransport:
    global _default
    if _default is None:
        _default = ZmqTransport()
    return _default
