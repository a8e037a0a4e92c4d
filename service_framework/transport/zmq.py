"""The production transport: real ZeroMQ sockets. The only module that imports `zmq`."""

from __future__ import annotations

import atexit
import datetime as _dt
import itertools
import os
import threading
import time
from typing import Collection, Sequence

import zmq
from zmq.utils.monitor import recv_monitor_message

from .base import Clock, Frames, Poller, Socket, SocketKind, Transport
from .curve import AllowLists

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
# Bodies at least this long are sent without a copy (pyzmq's own default threshold); below
# it a copy is cheaper than tracking a zero-copy frame.
ZERO_COPY_BYTES = 65536
_NOBLOCK = zmq.NOBLOCK
_NOBLOCK_SNDMORE = zmq.NOBLOCK | zmq.SNDMORE
_EVENTS, _POLLIN = zmq.EVENTS, zmq.POLLIN
_get_option = zmq.backend.Socket.get  # the C getter, without the Python-level wrapper
# What `recv` knows of a socket's queue (see `ZmqSocket.recv`).
_POLLED, _ASK, _DRAIN = 0, 1, 2


class SystemClock(Clock):
    def monotonic(self) -> float:
        return time.monotonic()

    def now(self) -> _dt.datetime:
        return _dt.datetime.now(_dt.timezone.utc)


class ZmqSocket(Socket):
    __slots__ = ("kind", "owner", "raw", "_send", "_recv", "_bound", "_zap", "queue")

    def __init__(self, context: zmq.Context, kind: SocketKind, owner: str, hwm: int) -> None:
        self.kind = kind
        self.owner = owner
        raw = context.socket(_ZMQ_TYPES[kind])
        raw.setsockopt(zmq.LINGER, LINGER_MS)
        raw.setsockopt(zmq.SNDHWM, hwm)
        raw.setsockopt(zmq.RCVHWM, hwm)
        if kind is SocketKind.XPUB:
            # Every subscription reaches us (not only the first per topic): we count
            # subscribers for `min_subscribers`. NODROP turns a silent HWM drop into
            # EAGAIN, so drops are counted and logged instead of vanishing.
            raw.setsockopt(zmq.XPUB_VERBOSE, 1)
            raw.setsockopt(zmq.XPUB_NODROP, 1)
        self.raw = raw
        # Frame by frame rather than send_multipart/recv_multipart: those re-check every
        # part in Python and ask for RCVMORE with one more call per frame, which costs
        # more than the message itself on a small request (see benchmarks/run.py).
        self._send = raw.send
        self._recv = raw.recv
        self._bound: list[str] = []
        self._zap: tuple[_Zap, str] | None = None
        self.queue = _DRAIN

    def bind(self, endpoint: str) -> str:
        self.raw.bind(endpoint)
        bound = self.raw.getsockopt(zmq.LAST_ENDPOINT).decode()
        self._bound.append(bound)
        return bound

    def connect(self, endpoint: str) -> None:
        self.raw.connect(endpoint)

    def send(self, frames: Frames) -> bool:
        send = self._send
        last = len(frames) - 1
        try:
            if len(frames[last]) >= ZERO_COPY_BYTES:
                self.raw.send_multipart(frames, _NOBLOCK, copy=False)
                return True
            # EAGAIN (HWM, no peer) comes on the first part: a message goes whole or not.
            for index in range(last):
                send(frames[index], _NOBLOCK_SNDMORE)
            send(frames[last], _NOBLOCK)
        except zmq.Again:
            return False
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
            if not _get_option(self.raw, _EVENTS) & _POLLIN:
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
        zap = _zap_for(raw.context)
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
        self._poller.register(socket.raw, zmq.POLLIN)

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
        """The write end of the wake pipe (for `signal.set_wakeup_fd`: a signal wakes `poll`)."""
        return self._wake_w

    def wake(self) -> None:
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
    """Real sockets on the process-wide ZMQ context. Many services may share one."""

    name = "zmq"

    def __init__(self, context: zmq.Context | None = None) -> None:
        self.context = context or zmq.Context.instance()
        self.clock = SystemClock()
        self._lock = threading.Lock()
        # Ids (workflow ids, epochs): a random prefix per transport and a counter, unique
        # like uuid4().hex (32 hex digits) at a tenth of its cost; every to_send made
        # outside a handler needs one. next() on itertools.count is atomic under the GIL.
        self._id_prefix = os.urandom(8).hex()
        self._id_counter = itertools.count(int.from_bytes(os.urandom(4), "big"))

    def new_id(self) -> str:
        return f"{self._id_prefix}{next(self._id_counter):016x}"

    def socket(self, kind: SocketKind, *, owner: str, hwm: int = 1000) -> Socket:
        with self._lock:  # context.socket is thread-safe; the lock keeps option setting tidy
            return ZmqSocket(self.context, kind, owner, hwm)

    def poller(self, *, owner: str) -> Poller:
        return ZmqPoller()


class _Zap:
    """The ZAP handler of one ZMQ context: pyzmq's `ThreadAuthenticator`, one per context.

    Each secured service is a ZAP domain with its own allow-list, so several services in a
    process never share clients. The thread starts with the first CURVE server socket and
    stops when the last one closes (or at process exit); plain sockets never start it.
    """

    def __init__(self, context: zmq.Context) -> None:
        self.context = context
        self.allow_lists = AllowLists()
        self.authenticator = None
        self._lock = threading.Lock()

    def callback(self, domain: str, client_public: bytes) -> bool:
        """pyzmq's credentials-provider interface: runs on the authenticator's thread."""
        return self.allow_lists.allows(domain, client_public)

    def acquire(self, domain: str, allowed: Collection[bytes]) -> None:
        with self._lock:
            if not self.allow_lists.add(domain, allowed):
                return
            try:
                if self.authenticator is None:
                    authenticator = _authenticator_class()(self.context)
                    authenticator.start()
                    self.authenticator = authenticator
                    _register_exit_hook()
                self.authenticator.configure_curve_callback(domain, self)
            except BaseException:
                self.allow_lists.remove(domain)
                raise

    def release(self, domain: str) -> None:
        with self._lock:
            # The domain's provider entry stays (the ZAP thread reads that dict without a
            # lock); with the domain gone from the allow-lists, it refuses everyone.
            if self.allow_lists.remove(domain) and self.allow_lists.empty:
                self._stop()

    def _stop(self) -> None:
        authenticator, self.authenticator = self.authenticator, None
        if authenticator is not None:
            authenticator.stop()

    @property
    def running(self) -> bool:
        authenticator = self.authenticator
        return authenticator is not None and authenticator.is_alive()


_ZAP_ENDPOINT = "inproc://zeromq.zap.01"  # fixed by the ZAP spec (RFC 27)
_pipe_ids = itertools.count(1)
_authenticator_cls: type | None = None


def _authenticator_class() -> type:
    """pyzmq's ThreadAuthenticator, made restartable at once in the same context.

    pyzmq closes the ZAP socket without unbinding it, and libzmq frees an inproc endpoint
    only later, on its reaper thread: a new authenticator started right after (the next
    secured service) failed with EADDRINUSE. Unbinding first frees it synchronously. The
    control pipe gets a unique name too (pyzmq names it by `id()`, which Python reuses).
    """
    global _authenticator_cls
    if _authenticator_cls is None:
        from zmq.auth.base import Authenticator
        from zmq.auth.thread import ThreadAuthenticator

        class _UnbindBeforeClose(Authenticator):
            def stop(self) -> None:
                if self.zap_socket is not None:
                    try:
                        self.zap_socket.unbind(_ZAP_ENDPOINT)
                    except zmq.ZMQError:
                        pass
                super().stop()

        class _Authenticator(ThreadAuthenticator, _UnbindBeforeClose):
            def __init__(self, context: zmq.Context) -> None:
                super().__init__(context)
                self.pipe_endpoint = f"inproc://service_framework.zap.pipe.{next(_pipe_ids)}"

        _authenticator_cls = _Authenticator
    return _authenticator_cls


_zaps: dict[int, _Zap] = {}
_zaps_lock = threading.Lock()
_exit_hook_registered = False


def _zap_for(context: zmq.Context) -> _Zap:
    with _zaps_lock:
        zap = _zaps.get(id(context))
        if zap is None or zap.context is not context:
            zap = _zaps[id(context)] = _Zap(context)
        return zap


def _register_exit_hook() -> None:
    global _exit_hook_registered
    if not _exit_hook_registered:
        _exit_hook_registered = True
        atexit.register(stop_authenticators)


def stop_authenticators() -> None:
    """Stops every ZAP thread this module started (at process exit)."""
    with _zaps_lock:
        zaps = list(_zaps.values())
    for zap in zaps:
        with zap._lock:
            zap._stop()


def authenticator_running(context: zmq.Context | None = None) -> bool:
    """Whether a ZAP authenticator of ours runs on `context` (default: the global one)."""
    context = context or zmq.Context.instance()
    with _zaps_lock:
        zap = _zaps.get(id(context))
    return zap is not None and zap.context is context and zap.running


_default: ZmqTransport | None = None


def default_zmq_transport() -> ZmqTransport:
    global _default
    if _default is None:
        _default = ZmqTransport()
    return _default
