"""What connections and states share: sockets from the addresses file, timers, closing."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from .addresses import endpoints, has_address, socket_needs
from .logs import get_logger
from .transport.base import Socket

if TYPE_CHECKING:
    from .runtime import Runtime

log = get_logger()
GIVE_UP_POLL_S = 0.05  # how often a subscriber wait that may be given up looks up


class Component:
    """A connection or a state of one service. Subclasses open sockets in `open()`."""

    section = "connections"

    def __init__(self, spec: Any, runtime: "Runtime") -> None:
        self.spec = spec
        self.name: str = spec.name
        self.side: str = spec.side
        self.runtime = runtime
        self.sockets: list[Socket] = []
        self._needs = {need.key: need for need in socket_needs(self.section, self.side, spec)}

    @property
    def label(self) -> str:
        kind = "connection" if self.section == "connections" else "state"
        return f"{kind} {self.name!r}"

    def endpoints(self, key: str, *, many: bool = False) -> list[str]:
        return endpoints(self.runtime.definition.addresses, self.section, self.side, self.name,
                         key, many=many)

    def has_address(self, key: str) -> bool:
        """Whether this component has an address under `key` (a full-update state may
        lack its snapshot pair)."""
        return has_address(self.runtime.definition.addresses, self.section, self.side,
                           self.name, key)

    def open_socket(self, key: str, *, hwm: int = 1000,
                    only: list[str] | None = None) -> Socket:
        """The socket this component needs under address `key` (`addresses.socket_needs`),
        bound or connected to its addresses (or to `only` those of them: one replica)."""
        need = self._needs[key]
        socket = self.runtime.transport.socket(need.kind,
                                               owner=f"{self.runtime.name}.{self.name}", hwm=hwm,
                                               max_bytes=self.runtime.max_message_bytes)
        self.sockets.append(socket)
        security = self.runtime.definition.security
        if security is not None:  # CurveZMQ (SPEC §15): before any bind or connect
            security.secure(socket, self.section, self.name, bind=need.binds)
        for endpoint in only if only is not None else self.endpoints(key, many=need.many):
            if need.binds:
                self.bound_endpoint = socket.bind(endpoint)
            else:
                socket.connect(endpoint)
        return socket

    def close_socket(self, socket: Socket) -> None:
        self.runtime.unwatch(socket)
        socket.close()
        if socket in self.sockets:
            self.sockets.remove(socket)

    def open(self) -> None:
        """Creates, binds and connects this component's sockets."""

    def close(self) -> None:
        for socket in list(self.sockets):
            self.close_socket(socket)

    def next_deadline(self) -> float | None:
        return None

    def on_timer(self, now: float) -> None:
        """Runs when `next_deadline()` has passed."""


def topic_bytes(creation: dict) -> bytes:
    """The topic frame of a publisher, subscriber or state: its `topic` creation argument,
    else the empty topic (every message on the socket), as in 0.0.12 (SPEC §6). A topic
    that is set is matched exactly by the receiving side (ZMQ filters only by prefix)."""
    topic = creation.get("topic", b"")
    return topic if isinstance(topic, bytes) else str(topic).encode()


def describe_topic(topic: bytes) -> str:
    """A topic for a log line: `b'orders'`, or `b'' (every message)`."""
    return f"{topic!r} (every message)" if topic == b"" else repr(topic)


class SubscriptionCounter:
    """Counts the live subscriptions that match one topic, from the messages an XPUB
    socket receives.

    Bounded whatever subscribers send: only prefixes of the topic are kept (ZMQ filters are
    prefixes, nothing else can match), so at most `len(topic) + 1` entries; a flood of
    other or duplicate subscriptions costs a read each and nothing more.
    """

    def __init__(self, topic: bytes = b"") -> None:
        self.topic = topic
        self.counts: dict[bytes, int] = {}

    def read(self, socket: Socket) -> None:
        """Reads every queued subscription message (and keeps the socket's queue empty)."""
        topic, counts = self.topic, self.counts
        while (frames := socket.recv()) is not None:
            message = frames[0]
            prefix = message[1:]
            if not topic.startswith(prefix):
                continue
            if message[:1] == b"\x01":
                counts[prefix] = counts.get(prefix, 0) + 1
            elif message[:1] == b"\x00":
                counts[prefix] = max(0, counts.get(prefix, 0) - 1)

    def matching(self, topic: bytes) -> int:
        # ZMQ filters are prefixes: a subscription to b"" or to a prefix also receives us.
        return sum(n for prefix, n in self.counts.items() if topic.startswith(prefix))


def wait_for_subscribers(runtime: "Runtime", socket: Socket, counter: SubscriptionCounter,
                         topic: bytes, minimum: int, timeout_s: float, *, owner: str,
                         label: str, give_up: Callable[[], bool] | None = None) -> bool:
    """Blocks up to `timeout_s` until `minimum` subscriptions matching `topic` have reached
    the XPUB `socket` (counted in `counter`); False, with a warning, when the time ran out.

    It polls through the transport, so on the memory bus the time is virtual (the bus runs
    the other services meanwhile). `give_up()`, asked every few tens of milliseconds of
    real time, ends the wait early (the component is closing). Behind an XSUB/XPUB proxy
    the socket sees the subscriptions the proxy forwards: one per topic, however many
    subscribers sit behind it (unless the proxy's XPUB is verbose).
    """
    clock = runtime.clock
    deadline = clock.monotonic() + timeout_s
    # in virtual time a close comes from the waiting thread itself: no need to look often
    look_s = GIVE_UP_POLL_S if give_up is not None and not clock.virtual else None
    poller = runtime.transport.poller(owner=owner)
    poller.register(socket)
    try:
        while True:
            counter.read(socket)
            if counter.matching(topic) >= minimum:
                return True
            remaining = deadline - clock.monotonic()
            if remaining <= 0 or (give_up is not None and give_up()):
                log.warning("%s: %d of %d subscriber(s) after %.3gs; publishing anyway",
                            label, counter.matching(topic), minimum, timeout_s)
                return False
            poller.poll(remaining if look_s is None else min(remaining, look_s))
    finally:
        poller.close()
