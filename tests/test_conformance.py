"""Fidelity to ZeroMQ: what a service can observe of ZeroMQ, on both transports.

Every test here runs on the memory bus and on real ZeroMQ (127.0.0.1, free ports) and
expects the same outcome. Socket-level behaviours use the transport seam directly
(`transport.socket`, `bind`/`connect`/`send`/`recv`, a poller: on the bus a poll runs the
bus in virtual time); the others run small services (`tests/services/conformance_*.py`)
through the same `ServiceHarness` that `sf_service` makes. The file parametrizes its own
transports, so it does not use the `sf_service` fixture (with `--sf-transport=both` that
would run every test twice more). Waits have deadlines (virtual seconds on the bus).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from helpers import wait_until

from service_framework.transport.base import Frames, Socket, SocketKind
from service_framework.transport.zmq import default_zmq_transport
from service_framework.wire.envelope import encode_request
from service_framework_testing import FaultyTransport, ServiceHarness
from service_framework_testing.differential import Link, LinkRecorder, assert_same_links
from service_framework_testing.ports import free_port

SERVICES = Path(__file__).parent / "services"
PUBLISHER = SERVICES / "conformance_publisher.py"
RELAY = SERVICES / "conformance_relay.py"
WORKER = SERVICES / "conformance_worker.py"
CLIENT = SERVICES / "conformance_client.py"
ANY_PORT = "tcp://127.0.0.1:*"
WAIT_S = 10.0


class Wire:
    """One transport of one test: raw sockets and services on it, closed at the end."""

    def __init__(self, name: str, sf_bus) -> None:
        self.name = name
        self.sf_bus = sf_bus
        self.transport = sf_bus.bus if name == "memory" else default_zmq_transport()
        self.clock = self.transport.clock
        self.links = LinkRecorder()
        self._sockets: list[tuple[Socket, object]] = []
        self._harnesses: list[ServiceHarness] = []
        self._ports = itertools.count(30000)  # the bus's own: no clash with its `*` ports

    # -- sockets --------------------------------------------------------------------------
    def socket(self, kind: SocketKind, owner: str, *, hwm: int = 1000) -> Socket:
        socket = self.transport.socket(kind, owner=owner, hwm=hwm)
        poller = self.transport.poller(owner=owner)
        poller.register(socket)
        self._sockets.append((socket, poller))
        return socket

    def _poller(self, socket: Socket):
        return next(poller for known, poller in self._sockets if known is socket)

    def recv(self, socket: Socket, timeout_s: float = WAIT_S) -> Frames:
        """The next message of `socket`, waiting up to `timeout_s` for it."""
        deadline = self.clock.monotonic() + timeout_s
        while (frames := socket.recv()) is None:
            remaining = deadline - self.clock.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{socket.owner}: no message within {timeout_s:g}s")
            self._poller(socket).poll(min(remaining, 0.5))
        return frames

    def recv_numbers(self, socket: Socket, until: int) -> list[int]:
        """The numbers (first 4 bytes of the body) `socket` receives, up to `until`."""
        numbers: list[int] = []
        while not numbers or numbers[-1] != until:
            numbers.append(number(self.recv(socket)))
        return numbers

    def wait_subscribed(self, publisher: Socket, topic: bytes, count: int = 1) -> None:
        """Until `count` subscriptions to `topic` have reached `publisher` (an XPUB)."""
        seen = 0
        while seen < count:
            seen += self.recv(publisher) == [b"\x01" + topic]

    # -- services -------------------------------------------------------------------------
    def address(self) -> str:
        return f"127.0.0.1:{free_port() if self.name == 'zmq' else next(self._ports)}"

    def service(self, spec: Path, *, record_as: str | None = None, transport=None,
                **options) -> ServiceHarness:
        """What `sf_service(spec, transport=<this one>)` makes; its links are recorded."""
        if self.name == "memory":
            harness = self.sf_bus.service(spec, **options)
        else:
            harness = ServiceHarness(spec, transport=transport or self.transport, **options)
            self._harnesses.append(harness)
        self.links.attach(harness, name=record_as)
        return harness

    def eventually(self, condition, what: str, timeout_s: float = WAIT_S) -> None:
        """Until `condition()` holds: the bus runs (virtual time), real time is waited."""
        if self.name == "zmq":
            wait_until(condition, timeout_s, message=what)
            return
        end = self.clock.monotonic() + timeout_s
        while not condition():
            if self.clock.monotonic() >= end:
                raise AssertionError(f"timed out after {timeout_s:g}s waiting for {what}")
            self.sf_bus.advance(0.05)

    def close(self) -> None:
        for harness in self._harnesses:
            harness.close()
        for socket, poller in self._sockets:
            socket.close()
            poller.close()


@pytest.fixture(params=["memory", "zmq"])
def on(request, sf_bus):
    wire = Wire(request.param, sf_bus)
    yield wire
    wire.close()


def numbered(n: int, size: int = 0) -> Frames:
    return [b"t", n.to_bytes(4, "big") + bytes(size)]


def number(frames: Frames) -> int:
    return int.from_bytes(frames[1][:4], "big")


def endpoint(bound: str) -> str:
    return bound.removeprefix("tcp://")


# -- 1, 2: pub/sub joins -------------------------------------------------------------------
def test_a_message_published_before_anyone_subscribed_is_never_received(on):
    publisher = on.socket(SocketKind.XPUB, "a.pub")
    bound = publisher.bind(ANY_PORT)
    assert publisher.send(numbered(0))  # no subscriber: gone, and the send still succeeds
    subscriber = on.socket(SocketKind.SUB, "b.sub")
    subscriber.connect(bound)
    subscriber.subscribe(b"t")
    on.wait_subscribed(publisher, b"t")
    publisher.send(numbered(1))
    # Per-link order: had message 0 been kept for it, it would come first.
    assert on.recv_numbers(subscriber, until=1) == [1]


def test_a_slow_joiner_gets_only_what_is_sent_after_its_subscription_arrived(on):
    publisher = on.socket(SocketKind.XPUB, "a.pub")
    bound = publisher.bind(ANY_PORT)
    early = on.socket(SocketKind.SUB, "early.sub")
    early.connect(bound)
    early.subscribe(b"t")
    on.wait_subscribed(publisher, b"t")
    for n in range(5):
        publisher.send(numbered(n))
    late = on.socket(SocketKind.SUB, "late.sub")
    late.connect(bound)
    late.subscribe(b"t")
    on.wait_subscribed(publisher, b"t")  # from here on the publisher sends to it too
    for n in range(5, 10):
        publisher.send(numbered(n))
    assert on.recv_numbers(early, until=9) == list(range(10))
    assert on.recv_numbers(late, until=9) == list(range(5, 10))


def test_min_subscribers_makes_the_first_message_wait_for_a_late_subscriber(on):
    """The slow joiner's loss, avoided. The relay connects before the publisher binds;
    on ZeroMQ it retries every 100 ms (`ZMQ_RECONNECT_IVL`), so its subscription arrives
    well after the publisher's first send — without the handshake those messages would be
    lost to it. With `min_subscribers=1` it gets every message."""
    ticks = on.address()
    on.service(RELAY, config={"forward": False}, addresses=relay_addresses(on, [ticks]))
    publisher = on.service(PUBLISHER, main_mode=True, config={"count": 20, "min_subscribers": 1},
                           addresses={"connections": {"out": {"ticks": {"publisher": ticks}}}})
    publisher.run_main()
    on.eventually(lambda: on.links.count("conformance_relay", "ticks", "message") >= 20,
                  "20 messages at the relay")
    assert on.links.received("conformance_relay", "ticks", "message") == [
        {"n": n} for n in range(20)]


def relay_addresses(on: Wire, ticks: list[str], work: list[str] | None = None) -> dict:
    return {"connections": {"in": {"ticks": {"subscriber": ticks}},
                            "out": {"work": {"requester": work or [on.address()]}}}}


# -- 3: high-water marks -----------------------------------------------------------------
HWM = 10
BIG = 64 * 1024  # large messages, so the OS socket buffers in between hold few of them
# What the loopback TCP buffers of one connection hold at most (Linux's default maxima are
# 4 MiB to send and 6 MiB to receive), in messages: room a stalled ZMQ peer has beyond
# the two high-water marks. The bus has no such buffers.
OS_BUFFERED = 16 * 1024 * 1024 // BIG


def test_a_stalled_subscriber_loses_messages_alone_at_its_high_water_mark(on):
    """A subscriber nobody reads does not hold up the others: the healthy one gets all,
    the stalled one holds at most its high-water mark (on ZeroMQ: the publisher's for it
    plus its own plus what the OS socket buffers hold), and drops the rest silently."""
    count, batch = 600, HWM
    publisher = on.socket(SocketKind.XPUB, "a.pub", hwm=HWM)
    bound = publisher.bind(ANY_PORT)
    healthy = on.socket(SocketKind.SUB, "healthy.sub", hwm=HWM)
    stalled = on.socket(SocketKind.SUB, "stalled.sub", hwm=HWM)
    for subscriber in (healthy, stalled):
        subscriber.connect(bound)
        subscriber.subscribe(b"t")
    on.wait_subscribed(publisher, b"t", count=2)
    received = []
    for start in range(0, count, batch):
        # libzmq learns that a subscriber's queue has room from commands it processes on
        # a call on the socket (a receive does; a send only once a millisecond), so the
        # publisher looks at its socket between bursts as a loop watching it would.
        assert publisher.recv() is None
        assert all(publisher.send(numbered(n, BIG)) for n in range(start, start + batch))
        received += on.recv_numbers(healthy, until=start + batch - 1)
    assert received == list(range(count))
    # What the stalled one held: read it now, until a marker sent after the stream comes
    # (markers go on until one gets through; per-link order puts held messages first).
    held, markers = [], itertools.count(count)
    publisher.send(numbered(next(markers)))
    while True:
        try:
            n = number(on.recv(stalled, timeout_s=0.2))
        except AssertionError:
            marker = next(markers)
            assert marker < count + 100, "no marker reached the stalled subscriber"
            publisher.send(numbered(marker))
            continue
        if n >= count:
            break
        held.append(n)
    assert held[:HWM] == list(range(HWM)) and held == sorted(set(held))
    assert len(held) <= HWM + HWM + OS_BUFFERED < count, len(held)


# -- 4: topics ---------------------------------------------------------------------------
def test_a_subscriber_sees_its_exact_topic_only_though_zmq_filters_by_prefix(on):
    feed = on.socket(SocketKind.XPUB, "feed.pub")
    bound = feed.bind(ANY_PORT)
    relay = on.service(RELAY, config={"topic": "orders", "forward": False},
                       addresses=relay_addresses(on, [endpoint(bound)]))
    on.wait_subscribed(feed, b"orders")
    for topic, n in ((b"orders_eu", 1), (b"orders", 2), (b"order", 3)):
        feed.send([topic, encode_request(f"wf-{n}", {"n": n}, max_bytes=1 << 20)])
    subscriber = relay.runtime.in_connections["ticks"]
    # The prefix filter lets "orders_eu" through to the socket (but not "order") ...
    on.eventually(lambda: subscriber.received == 2, "2 messages off the relay's socket")
    # ... and the framework's subscriber hands its handler the exact topic only.
    assert on.links.received("conformance_relay", "ticks", "message") == [{"n": 2}]


# -- 5, 6: routing -----------------------------------------------------------------------
def test_a_router_reply_to_a_vanished_peer_is_dropped_silently(on):
    router = on.socket(SocketKind.ROUTER, "svc.router")
    bound = router.bind(ANY_PORT)
    gone = on.socket(SocketKind.DEALER, "gone.dealer")
    gone.connect(bound)
    gone.send([b"from gone"])
    identity, body = on.recv(router)
    assert body == b"from gone"
    gone.close()
    assert router.send([identity, b"to gone"])  # no error, no exception
    stays = on.socket(SocketKind.DEALER, "stays.dealer")
    stays.connect(bound)
    stays.send([b"from stays"])
    identity, body = on.recv(router)
    assert body == b"from stays"
    router.send([identity, b"to stays"])
    assert on.recv(stays) == [b"to stays"]


def test_a_dealer_spreads_messages_round_robin_over_its_endpoints(on):
    routers = [on.socket(SocketKind.ROUTER, f"r{i}.router") for i in range(2)]
    bound = [router.bind(ANY_PORT) for router in routers]
    dealer = on.socket(SocketKind.DEALER, "d.dealer")
    for endpoint_ in bound:
        dealer.connect(endpoint_)
    for n in range(6):
        assert dealer.send([n.to_bytes(4, "big")])
    got = [[int.from_bytes(on.recv(router)[1], "big") for _ in range(3)] for router in routers]
    assert got == [[0, 2, 4], [1, 3, 5]]


def test_a_requester_with_two_replyers_alternates_between_them(on):
    work = [on.address(), on.address()]
    for name, address in zip("ab", work, strict=True):
        on.service(WORKER, config={"name": name}, record_as=f"worker_{name}",
                   addresses={"connections": {"in": {"work": {"replyer": address}}}})
    client = on.service(CLIENT, main_mode=True, config={"count": 6},
                        addresses={"connections": {"out": {"work": {"requester": work}}}})
    assert [reply["by"] for reply in client.run_main()] == list("ababab")


# -- 7: restarts -------------------------------------------------------------------------
def test_a_requester_keeps_working_after_its_replyer_restarts(on):
    work = on.address()
    addresses = {"connections": {"in": {"work": {"replyer": work}}}}
    first = on.service(WORKER, config={"name": "first"}, addresses=addresses)
    client = on.service(CLIENT, main_mode=True, config={"count": 2},
                        addresses={"connections": {"out": {"work": {"requester": [work]}}}})
    assert [reply["by"] for reply in client.run_main()] == ["first", "first"]
    first.close()
    on.service(WORKER, config={"name": "second"}, addresses=addresses)  # the same endpoint
    assert [reply["by"] for reply in client.run_main()] == ["second", "second"]


def test_a_subscriber_keeps_receiving_after_its_publisher_restarts(on):
    ticks = on.address()
    addresses = {"connections": {"out": {"ticks": {"publisher": ticks}}}}
    on.service(RELAY, config={"forward": False}, addresses=relay_addresses(on, [ticks]))
    for start in (0, 3):
        publisher = on.service(PUBLISHER, main_mode=True, addresses=addresses,
                               config={"count": 3, "start": start, "min_subscribers": 1})
        publisher.run_main()  # waits for the relay's subscription, again after the restart
        on.eventually(lambda total=start + 3: on.links.count(
            "conformance_relay", "ticks", "message") == total, f"{start + 3} messages")
        publisher.close()
    assert on.links.received("conformance_relay", "ticks", "message") == [
        {"n": n} for n in range(6)]


# -- 8: at-least-once ----------------------------------------------------------------------
def test_a_request_whose_reply_was_lost_is_retried_and_run_twice(on):
    """Requester `retries=1`, the first reply lost: the retry is answered, and the replyer
    ran the handler twice (at-least-once). The same fault plan on both transports: the
    bus's, or a `FaultyTransport`'s over ZeroMQ (it drops the reply as it is received)."""
    transport = None if on.name == "memory" else FaultyTransport()
    faults = on.sf_bus.faults if transport is None else transport.faults
    lost = faults.drop(kind="reply", connection="work", nth=0)
    work = on.address()
    on.service(WORKER, addresses={"connections": {"in": {"work": {"replyer": work}}}})
    client = on.service(CLIENT, main_mode=True, transport=transport,
                        config={"count": 1, "timeout_s": 1.0, "retries": 1},
                        addresses={"connections": {"out": {"work": {"requester": [work]}}}})
    assert client.run_main() == [{"n": 0, "by": "worker", "calls": 2}]
    assert (lost.hits, client.runtime.counters.get("request_timeouts", 0)) == (1, 0)
    assert on.links.received("conformance_worker", "work", "request") == [{"n": 0}] * 2
    assert on.links.received("conformance_client", "work", "reply") == [
        {"n": 0, "by": "worker", "calls": 2}]


# -- differential: one topology, both transports, the same messages per link ---------------
def pipeline(on: Wire, count: int = 30) -> dict:
    """A main-mode publisher → a relay that forwards each message through its requester
    → a worker (replyer); fault-free. Returns what every service received, per link."""
    ticks, work = on.address(), on.address()
    on.service(WORKER, addresses={"connections": {"in": {"work": {"replyer": work}}}})
    on.service(RELAY, addresses=relay_addresses(on, [ticks], [work]))
    publisher = on.service(PUBLISHER, main_mode=True,
                           config={"count": count, "min_subscribers": 1},
                           addresses={"connections": {"out": {"ticks": {"publisher": ticks}}}})
    publisher.run_main()
    on.eventually(lambda: on.links.count("conformance_relay", "work", "reply") == count,
                  f"{count} replies at the relay")
    return on.links.links()


def test_a_pipeline_gives_every_link_the_same_messages_on_both_transports(sf_bus):
    memory, zmq = Wire("memory", sf_bus), Wire("zmq", sf_bus)
    try:
        on_memory, on_zmq = pipeline(memory), pipeline(zmq)
    finally:
        zmq.close()
        memory.close()
    assert_same_links(on_memory, on_zmq)
    assert on_memory == {
        Link("conformance_relay", "ticks", "message"): [{"n": n} for n in range(30)],
        Link("conformance_worker", "work", "request"): [{"n": n} for n in range(30)],
        Link("conformance_relay", "work", "reply"): [
            {"n": n, "by": "worker", "calls": n + 1} for n in range(30)]}
