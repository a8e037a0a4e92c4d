"""The one seam between the framework and the wire.

Connections, states, the loop and the harness speak only to these classes. Two
implementations satisfy them: `zmq` (real sockets) and `memory` (a deterministic bus with
virtual time). Frames are plain `bytes`; encoding lives above this line, in the codec.

A transport also says how its services get their turns, through its `Scheduler`: on real
sockets each service loops on a thread of its own; on the memory bus one bus steps them
all. `Service` and the test harness use only the scheduler's methods, never the type of
the transport.
"""

from __future__ import annotations

import abc
import datetime as _dt
import enum
import uuid
from typing import Callable, Collection, NamedTuple, Protocol, Sequence

Frames = list[bytes]


class SocketKind(enum.Enum):
    """The ZMQ socket types the framework uses, named by their ZMQ names."""

    ROUTER = "ROUTER"  # replyer, snapshot server: many concurrent requesters
    DEALER = "DEALER"  # requester, snapshot client: never stuck like REQ after a timeout
    XPUB = "XPUB"  # publisher: sees subscriptions, so `min_subscribers` needs no sleep
    SUB = "SUB"


class Clock(abc.ABC):
    """Where the runtime reads time: monotonic seconds for deadlines, and wall time.

    A `virtual` clock (the memory bus's) moves only when `wait_until` moves it, and never
    back (as trio's `MockClock`): the same inputs give the same times. A wall clock
    follows real time and `wait_until` sleeps.
    """

    virtual: bool = False

    @abc.abstractmethod
    def monotonic(self) -> float:
        """Seconds, for deadlines; only differences mean anything."""

    @abc.abstractmethod
    def now(self) -> _dt.datetime:
        """The current wall time, timezone-aware (UTC)."""

    @abc.abstractmethod
    def wait_until(self, t: float | None) -> None:
        """Until `monotonic()` reaches `t` (None: no end). A virtual clock jumps to `t` at
        once and raises ValueError when `t` is earlier than now; a wall clock sleeps until
        `t` or until `wake()`."""

    @abc.abstractmethod
    def wake(self) -> None:
        """Ends a `wait_until` in progress early. Safe from any thread and signal handlers."""


class Socket(abc.ABC):
    """A message socket. Non-blocking: waiting is done by a `Poller`."""

    kind: SocketKind
    owner: str  # "service.component": who holds it (fault rules and traces name it)

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

    def limit_peer_bytes(self, max_bytes: int) -> None:
        """ROUTER: refuse (send returns False) a reply to a peer that still holds `max_bytes`
        of earlier ones unread (`transport.peer_budget`). The memory bus bounds a peer's
        queue by count only (`hwm`)."""

    def quiet_subscriptions(self) -> None:
        """XPUB: from now on only a topic's first subscription and last unsubscription are
        reported (XPUB_VERBOSE off), so a flood of duplicate subscriptions cannot grow the
        socket's queue. Called once nothing needs to count subscribers any more."""

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

    @property
    def wakeup_fd(self) -> int | None:
        """A file descriptor a byte written to wakes `poll`, or None when there is none.

        A blocking run hands it to `signal.set_wakeup_fd`, so a signal that lands just
        before `poll` blocks still wakes it (its Python handler would run only afterwards).
        """
        return None

    @abc.abstractmethod
    def close(self) -> None: ...


class Schedulable(Protocol):
    """What a `Scheduler` serves: one service's loop (`service_framework.runtime.Runtime`).

    - `step(timeout_s)` waits for input up to `timeout_s` (less when a timer of its own is
      due sooner), handles what arrived and the due timers, and returns; it never starts
      a thread, so one bus can step many services from one thread.
    - `run()` repeats `step(None)` until `stop_requested`, blocking in `poll` while idle,
      then runs the signal handlers still pending.
    - `next_deadline()` is when its next timer is due (`clock.monotonic()` seconds), or None.
    - `poller` is the `Poller` it waits on; `request_stop()` sets `stop_requested` and
      wakes it; `in_step` is True during a step (a bus never steps it inside its own);
      `closed` is True once its sockets are closed.
    """

    name: str
    poller: Poller
    stop_requested: bool
    closed: bool
    in_step: bool

    def step(self, timeout_s: float | None) -> int: ...

    def run(self) -> None: ...

    def next_deadline(self) -> float | None: ...

    def request_stop(self) -> None: ...


class Scheduler(abc.ABC):
    """How the services of one transport get their turns; the only place that knows.

    `finish` (given with a runtime) runs once, after the runtime's last step, where it
    stepped: it drains and closes the service. Stopping from inside the runtime's own
    step is allowed: its finish then runs when that step ends (on a thread) or at once.
    """

    @abc.abstractmethod
    def start(self, runtime: Schedulable, finish: Callable[[], None] | None = None) -> None:
        """Serves `runtime` from now on, and returns at once."""

    @abc.abstractmethod
    def run_blocking(self, runtime: Schedulable, finish: Callable[[], None]) -> None:
        """Serves `runtime` in the calling thread until it stops, then runs `finish()`."""

    @abc.abstractmethod
    def stop(self, runtime: Schedulable, timeout_s: float) -> bool:
        """Asks `runtime` to stop, and waits up to `timeout_s` until its `finish()` ran.

        False when it still runs then (a handler in flight); True otherwise, also when
        called from inside the runtime's own step (its finish follows that step).
        """

    @abc.abstractmethod
    def spawn(self, target: Callable[[], None], *, name: str) -> None:
        """Runs `target` (a service's `main`) beside the services: on a thread of its own,
        or, where one thread steps every service (the bus), to completion before returning."""

    def settle(self) -> None:
        """Lets every service finish what it can without time moving. On real sockets
        there is nothing to do: messages take real time, so a caller waits on a condition."""


class Packet(NamedTuple):
    """One message crossing one link, as a fault rule sees it, on any transport.

    Owners are `"service.component"`; `src` is None where the transport cannot know who
    sent (on ZeroMQ a bound socket is not told). `frames` are as the receiving socket gets
    them (a ROUTER's start with the sender's identity).
    """

    src: str | None
    dst: str
    src_kind: SocketKind
    dst_kind: SocketKind
    frames: Frames

    @property
    def src_service(self) -> str | None:
        return None if self.src is None else self.src.partition(".")[0]

    @property
    def src_component(self) -> str | None:
        return None if self.src is None else self.src.partition(".")[2]

    @property
    def dst_service(self) -> str:
        return self.dst.partition(".")[0]

    @property
    def dst_component(self) -> str:
        return self.dst.partition(".")[2]

    @property
    def topic(self) -> bytes | None:
        """The topic frame of a published message; None for anything else."""
        return self.frames[0] if self.src_kind is SocketKind.XPUB and self.frames else None


# What a transport that injects faults calls per packet: the copies to deliver, each with
# its delay in seconds (none: lost; one with 0.0: untouched).
FaultHook = Callable[[Packet], Sequence[tuple[float, Frames]]]


class Transport(abc.ABC):
    """Makes sockets and pollers, owns the clock and the scheduler; one per process or bus."""

    name: str
    clock: Clock
    scheduler: Scheduler
    # The seed that fixes every choice of this transport (orderings, ids, fault draws);
    # traces record it. None where nothing is seeded (ZeroMQ).
    seed: int | None = None

    @abc.abstractmethod
    def socket(self, kind: SocketKind, *, owner: str, hwm: int = 1000,
               max_bytes: int | None = None) -> Socket:
        """A socket; with `max_bytes`, an incoming frame longer than that is refused before
        it is allocated (libzmq's ZMQ_MAXMSGSIZE: the sending peer is disconnected; the
        memory bus drops the message)."""

    @abc.abstractmethod
    def poller(self, *, owner: str) -> Poller: ...

    def new_id(self) -> str:
        """A fresh id (workflow ids, epochs); the memory bus makes them from its seed."""
        return uuid.uuid4().hex
