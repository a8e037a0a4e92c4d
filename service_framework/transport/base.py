"""The one seam between the framework and the wire.

Connections, states, the loop and the harness speak only to these classes. Two
implementations satisfy them: `zmq` (real sockets) and `memory` (a deterministic bus with
virtual time). Frames are plain `bytes`; encoding lives above this line, in the codec.
"""

from __future__ import annotations

import abc
import datetime as _dt
import enum
import uuid
from typing import Collection, Sequence

Frames = list[bytes]


class SocketKind(enum.Enum):
    """The ZMQ socket types the framework uses, named by their ZMQ names."""

    ROUTER = "ROUTER"  # replyer, snapshot server: many concurrent requesters
    DEALER = "DEALER"  # requester, snapshot client: never stuck like REQ after a timeout
    XPUB = "XPUB"  # publisher: sees subscriptions, so `min_subscribers` needs no sleep
    SUB = "SUB"


class Clock(abc.ABC):
    """Where the runtime reads time: monotonic seconds for deadlines, and wall time."""

    @abc.abstractmethod
    def monotonic(self) -> float: ...

    @abc.abstractmethod
    def now(self) -> _dt.datetime:
        """The current wall time, timezone-aware (UTC)."""


class Socket(abc.ABC):
    """A message socket. Non-blocking: waiting is done by a `Poller`."""

    kind: SocketKind
    owner: str

    @abc.abstractmethod
    def bind(self, endpoint: str) -> str:
        """Binds and returns the endpoint actually bound (resolving a `*` port)."""

    @abc.abstractmethod
    def connect(self, endpoint: str) -> None: ...

    @abc.abstractmethod
    def send(self, frames: Frames) -> bool:
        """Queues a message; False when it was dropped (high-water mark, no route)."""

    @abc.abstractmethod
    def recv(self) -> Frames | None:
        """The next message, or None when nothing is waiting."""

    @abc.abstractmethod
    def subscribe(self, topic: bytes) -> None: ...

    # CurveZMQ (SPEC §15). Called before `bind`/`connect`; keys are Z85 text as bytes.
    def secure_server(self, public: bytes, secret: bytes, *, domain: str,
                      allowed: Collection[bytes]) -> None:
        """Makes this socket a CURVE server: only clients whose public key is in `allowed`
        (checked by ZAP, in `domain`) are linked; plain-text peers never are."""
        raise NotImplementedError(f"{type(self).__name__} does not support CurveZMQ")

    def secure_client(self, public: bytes, secret: bytes, *, server_public: bytes) -> None:
        """Makes this socket a CURVE client of the server whose public key is `server_public`."""
        raise NotImplementedError(f"{type(self).__name__} does not support CurveZMQ")

    @abc.abstractmethod
    def close(self) -> None: ...

    @property
    @abc.abstractmethod
    def closed(self) -> bool: ...


class Poller(abc.ABC):
    """Waits until registered sockets are readable, a deadline passes, or `wake()` is called."""

    @abc.abstractmethod
    def register(self, socket: Socket) -> None: ...

    @abc.abstractmethod
    def unregister(self, socket: Socket) -> None: ...

    @abc.abstractmethod
    def poll(self, timeout_s: float | None) -> Sequence[Socket]:
        """Readable sockets; an empty sequence when the timeout passed or on `wake()`."""

    @abc.abstractmethod
    def wake(self) -> None:
        """Interrupts a `poll` in progress. Safe from any thread and from signal handlers."""

    @abc.abstractmethod
    def close(self) -> None: ...


class Transport(abc.ABC):
    """Makes sockets and pollers and owns the clock; one per process or per test bus."""

    name: str
    clock: Clock

    @abc.abstractmethod
    def socket(self, kind: SocketKind, *, owner: str, hwm: int = 1000) -> Socket: ...

    @abc.abstractmethod
    def poller(self, *, owner: str) -> Poller: ...

    def new_id(self) -> str:
        """A fresh id (workflow ids, epochs); the memory bus makes them from its seed."""
        return uuid.uuid4().hex

    def attach(self, runtime: object) -> None:
        """Called when a service's runtime starts on this transport (the memory bus drives it)."""

    def detach(self, runtime: object) -> None:
        """Called when that runtime stops."""

    @property
    def drives_runtimes(self) -> bool:
        """True when the transport runs services' steps itself (no thread per service)."""
        return False
