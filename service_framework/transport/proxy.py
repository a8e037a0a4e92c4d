"""libzmq's own XSUB/XPUB forwarder, for `service_framework proxy`.

Publishers (and out-states) on many hosts connect to the XSUB side and publish into one
place; subscribers anywhere connect to the XPUB side. Messages and subscriptions are
forwarded by `zmq.proxy_steerable` in C, on a thread of its own; `stop()` ends it through
its control socket (TERMINATE), so a signal handler can stop it cleanly.

Bounds: each subscriber's queue on the XPUB side holds `hwm` messages (then that
subscriber alone loses its copies, as with any PUB socket), each publisher's on the XSUB
side `hwm` too; a message longer than `max_bytes` drops its sender's connection
(ZMQ_MAXMSGSIZE); subscriptions are queued at most `SUBSCRIPTIONS_HWM` per subscriber,
64 KiB each.
"""

from __future__ import annotations

import itertools
import threading

import zmq

from ..errors import ConfigError
from .zmq import LINGER_MS, MAX_SUBSCRIPTION_BYTES, SUBSCRIPTIONS_HWM, _endpoint_problem, shown

DEFAULT_HWM = 10_000
_names = itertools.count()


class Proxy:
    """An XSUB/XPUB proxy bound to `xsub` and `xpub` (full ZMQ endpoints)."""

    def __init__(self, xsub: str, xpub: str, *, hwm: int = DEFAULT_HWM,
                 max_bytes: int = 16 * 1024 * 1024) -> None:
        self.context = zmq.Context()
        self._control_name = f"inproc://sf-proxy-control-{next(_names)}"
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None
        self.bound: dict[str, str] = {}
        try:
            self.frontend = self._socket(zmq.XSUB, hwm, max_bytes)
            self.backend = self._socket(zmq.XPUB, hwm, max_bytes)
            # Subscriptions coming in are short and few; a flood of them waits on its
            # sender's side, not here.
            self.backend.setsockopt(zmq.RCVHWM, SUBSCRIPTIONS_HWM)
            self.backend.setsockopt(zmq.MAXMSGSIZE, MAX_SUBSCRIPTION_BYTES)
            self.bound["xsub"] = self._bind(self.frontend, "--xsub", xsub)
            self.bound["xpub"] = self._bind(self.backend, "--xpub", xpub)
            self.control = self.context.socket(zmq.PAIR)
            self.control.bind(self._control_name)
        except BaseException:
            self.context.destroy(linger=0)
            raise

    def _socket(self, kind: int, hwm: int, max_bytes: int) -> zmq.Socket:
        socket = self.context.socket(kind)
        socket.setsockopt(zmq.LINGER, LINGER_MS)
        socket.setsockopt(zmq.SNDHWM, hwm)
        socket.setsockopt(zmq.RCVHWM, hwm)
        socket.setsockopt(zmq.MAXMSGSIZE, max_bytes)
        return socket

    @staticmethod
    def _bind(socket: zmq.Socket, option: str, endpoint: str) -> str:
        if endpoint.startswith("tcp://["):  # an IPv6 address: libzmq's opt-in, as services
            socket.setsockopt(zmq.IPV6, 1)
        try:
            socket.bind(endpoint)
        except zmq.ZMQError as error:
            raise ConfigError(f"{option}: cannot bind {shown(endpoint)}: "
                              f"{_endpoint_problem(error, endpoint)}") from None
        return socket.getsockopt(zmq.LAST_ENDPOINT).decode()

    def start(self) -> "Proxy":
        steer = self.context.socket(zmq.PAIR)
        steer.connect(self._control_name)

        def forward() -> None:
            try:
                zmq.proxy_steerable(self.frontend, self.backend, None, steer)
            except zmq.ContextTerminated:
                pass
            except BaseException as error:  # kept for the caller: the thread dies quietly
                self.error = error
            finally:
                steer.close(0)

        self._thread = threading.Thread(target=forward, name="sf-proxy", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        """Ends the forwarding (TERMINATE on the control socket) and closes everything."""
        if self._thread is not None and self._thread.is_alive():
            try:  # not blocking: a forwarder that died of an error reads nothing
                self.control.send(b"TERMINATE", zmq.NOBLOCK)
            except zmq.Again:
                pass
            self._thread.join(timeout_s)
        self.control.close(0)
        self.frontend.close()
        self.backend.close()
        self.context.term()

    def wait(self, timeout_s: float | None) -> bool:
        """Whether the forwarding thread ended within `timeout_s` (it ends only on stop or
        an error)."""
        assert self._thread is not None
        self._thread.join(timeout_s)
        return not self._thread.is_alive()
