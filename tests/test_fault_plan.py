"""One fault plan, two transports: the memory bus applies it as it transmits, the shipped
`FaultyTransport` as real ZeroMQ sockets receive. The same plan gives the same outcome.

Services here run through `Service` only, whatever the transport, and tests wait on
conditions with deadlines by polling through the transport: on ZeroMQ a poll sleeps in real
time, on the bus it runs the services in virtual time.
"""

from __future__ import annotations

import types
from decimal import Decimal
from pathlib import Path

import pytest
from helpers import free_port

from service_framework import ArgumentError, Service
from service_framework.states import protocol
from service_framework.transport.base import Packet, SocketKind
from service_framework.transport.memory import MemoryBus
from service_framework_testing.bus import TestBus
from service_framework_testing.faults import Faults, classify
from service_framework_testing.faulty import FaultyTransport

ECHO = Path(__file__).parents[1] / "examples" / "echo"
BOOK = {"asks": {Decimal: Decimal}, "bids": {Decimal: Decimal}}
HEARTBEAT_S = 0.2


class World:
    """A transport with a fault plan (`faults`), and the services started on it."""

    def __init__(self, name: str) -> None:
        self.name = name
        if name == "memory":
            self.test_bus = TestBus(MemoryBus(seed=3))
            self.transport, self.faults = self.test_bus.bus, self.test_bus.faults
        else:
            self.transport = FaultyTransport()
            self.faults = self.transport.faults
        self.services: list[Service] = []

    def address(self) -> str:
        return f"127.0.0.1:{free_port()}"

    def start(self, service: Service, *, main: bool = False) -> Service:
        self.services.append(service)
        service.run_service_as_main() if main else service.run_service()
        return service

    def until(self, condition, what: str, timeout_s: float = 5.0) -> None:
        """Waits until `condition()` holds, in the transport's time; fails at the deadline."""
        clock = self.transport.clock
        poller = self.transport.poller(owner="test.wait")  # polls nothing: a bounded pause
        deadline = clock.monotonic() + timeout_s
        try:
            while not condition():
                if clock.monotonic() > deadline:
                    raise AssertionError(f"{self.name}: no {what} within {timeout_s}s")
                poller.poll(0.01)
        finally:
            poller.close()

    def close(self) -> None:
        for service in reversed(self.services):
            service.stop_service()


@pytest.fixture(params=["memory", "zmq"])
def world(request):
    world = World(request.param)
    yield world
    world.close()


def book_services(world: World) -> tuple[Service, Service]:
    publisher, replyer = world.address(), world.address()
    producer = types.ModuleType("producer")
    producer.state_models = {"out": {"book": {
        "state_type": "delta_update_out", "required_arguments": BOOK,
        "optional_creation_arguments": {"heartbeat_s": HEARTBEAT_S}}}}
    consumer = types.ModuleType("consumer")
    consumer.state_models = {"in": {"book": {
        "state_type": "delta_update_in", "required_arguments": BOOK,
        "optional_creation_arguments": {"heartbeat_s": HEARTBEAT_S,
                                        "snapshot_timeout_s": 1.0}}}}
    return (world.start(Service(service_module=producer, transport=world.transport,
                                addresses={"states": {"out": {"book": {
                                    "publisher": publisher, "replyer": replyer}}}})),
            world.start(Service(service_module=consumer, transport=world.transport,
                                addresses={"states": {"in": {"book": {
                                    "subscriber": publisher, "requester": replyer}}}})))


def test_one_plan_gives_the_same_outcome_on_the_bus_and_over_zeromq(world):
    world.faults.drop(state="book", kind="delta", nth=1)  # the 2nd update: a gap
    duplicate = world.faults.duplicate(state="book", seq=4)
    producer, consumer = book_services(world)
    out, in_state = producer.runtime.out_states["book"], consumer.runtime.in_states["book"]
    world.until(lambda: in_state.synced and in_state.heartbeats, "a subscribed consumer")

    def send(args: dict) -> None:
        producer.runtime.to_send("state", "book", args)

    def caught_up() -> bool:
        return in_state.synced and in_state.seq == out.seq and in_state.value == out.value

    send({"asks": {}, "bids": {}, "is_snapshot": True})  # seq 1
    world.until(caught_up, "the first update")
    send({"asks": {Decimal(1): Decimal(1)}})  # seq 2: lost
    send({"asks": {Decimal(2): Decimal(2)}})  # seq 3: a gap, recovered by a snapshot
    world.until(caught_up, "the recovery")
    send({"bids": {Decimal(3): Decimal(3)}})  # seq 4: arrives twice
    send({"bids": {Decimal(4): Decimal(4)}})  # seq 5
    world.until(lambda: caught_up() and in_state.ignored == 1, "the last update")
    assert (in_state.out_of_sync, in_state.snapshot_requests, in_state.ignored) == (1, 2, 1)
    assert in_state.value == {"asks": {Decimal(1): Decimal(1), Decimal(2): Decimal(2)},
                              "bids": {Decimal(3): Decimal(3), Decimal(4): Decimal(4)}}
    assert duplicate.hits == 1


def test_a_service_runs_crashes_and_restarts_the_same_way_on_both_transports(world):
    address = world.address()
    replyer = world.start(Service(service_path=ECHO / "replyer.py", transport=world.transport,
                                  config={"prefix": "> "}, addresses={
                                      "connections": {"in": {"echo": {"replyer": address}}}}))
    requester_addresses = {"connections": {"out": {"echo": {"requester": address}}}}

    def run_requester() -> Service:
        requester = world.start(Service(service_path=ECHO / "requester.py", config={
            "count": 2}, transport=world.transport, addresses=requester_addresses), main=True)
        world.until(lambda: requester.wait_stopped(0), "the requester's main to end")
        assert requester.main_error is None
        return requester

    run_requester()
    world.faults.crash("replyer")
    assert replyer.runtime.closed and replyer.wait_stopped(0)
    world.faults.restart("replyer")
    run_requester()
    assert replyer.runtime.counters.get("error_replies", 0) == 0 and not replyer.runtime.closed
    with pytest.raises(ArgumentError, match="no crashed service"):
        world.faults.restart("replyer")


# -- matching, without any transport -------------------------------------------------------
def update(seq: int) -> Packet:
    body = protocol.encode_update("e1", seq, False, {"n": seq})
    return Packet("p.book", "c.book", SocketKind.XPUB, SocketKind.SUB, [b"book", body])


def heartbeat(seq: int) -> Packet:
    body = protocol.encode_heartbeat("e1", seq, 1.0)
    return Packet("p.book", "c.book", SocketKind.XPUB, SocketKind.SUB, [b"book", body])


def test_kind_and_seq_rules_count_only_the_packets_they_select():
    faults = Faults()
    dropped = faults.drop(state="book", kind="delta", nth=1)
    doubled = faults.duplicate(seq={3, 9})
    stream = [heartbeat(0), update(1), heartbeat(1), update(2), heartbeat(2), update(3)]
    copies = [len(faults.apply(packet)) for packet in stream]
    assert copies == [1, 1, 1, 0, 1, 2]  # the 2nd delta lost, seq 3 twice, heartbeats pass
    assert (dropped.seen, dropped.hits) == (3, 1) and (doubled.seen, doubled.hits) == (1, 1)


def test_times_bounds_the_hits_and_when_sees_the_frames():
    faults = Faults()
    rule = faults.drop(kind="delta", when=lambda frames: frames[0] == b"book", times=2)
    assert [len(faults.apply(update(n))) for n in range(1, 5)] == [0, 0, 1, 1]
    assert rule.hits == 2


def test_a_reorder_by_count_delivers_the_held_packet_after_the_later_ones():
    faults = Faults()
    faults.reorder(seq=1, later=2)
    delivered = [body for n in (1, 2, 3, 4) for _, body in faults.apply(update(n))]
    seqs = [protocol.decode_message(frames[1]).seq for frames in delivered]
    assert seqs == [2, 3, 1, 4]


def test_a_held_update_waits_for_updates_not_heartbeats_or_for_release():
    faults = Faults()
    faults.reorder(state="book", kind="delta", times=1, later=1)  # hold the next update
    stream = [update(1), heartbeat(1), update(2), update(3)]
    delivered = [protocol.decode_message(body[1])
                 for packet in stream for _, body in faults.apply(packet)]
    assert [(type(m).__name__, m.seq) for m in delivered] == [
        ("Heartbeat", 1), ("Update", 2), ("Update", 1), ("Update", 3)]

    faults.reorder(state="book", kind="delta", times=1, later=5)  # held until released
    assert faults.apply(update(4)) == [] and len(faults.apply(heartbeat(4))) == 1
    faults.release()
    after = [protocol.decode_message(body[1]) for _, body in faults.apply(heartbeat(4))]
    assert [(type(m).__name__, m.seq) for m in after] == [("Heartbeat", 4), ("Update", 4)]


def test_packets_are_classified_by_sockets_and_the_state_protocol():
    from service_framework.wire.envelope import encode_reply, encode_request

    def packet(src, dst, body):
        return Packet("a.x", "b.x", src, dst, [b"id", body])

    dealer, router = SocketKind.DEALER, SocketKind.ROUTER
    assert classify(update(7)) == ("delta", 7)
    assert classify(heartbeat(7)) == ("heartbeat", None)
    assert classify(packet(dealer, router, protocol.encode_snapshot_request("r1"))) == (
        "snapshot_request", None)
    assert classify(packet(dealer, router, encode_request("wf", {}, "r1", max_bytes=999))) == (
        "request", None)
    assert classify(packet(router, dealer, protocol.encode_snapshot("r1", "e", 3, {}))) == (
        "snapshot_reply", None)
    assert classify(packet(router, dealer, encode_reply("wf", "r1", {}, max_bytes=999))) == (
        "reply", None)
    published = encode_request("wf", {"x": 1}, max_bytes=999)
    assert classify(Packet("a.p", "b.s", SocketKind.XPUB, SocketKind.SUB,
                           [b"t", published])) == ("publish", None)
    with pytest.raises(ValueError, match="unknown kind"):
        Faults().drop(kind="update")


def test_a_plain_memory_bus_has_no_fault_hook_and_a_test_bus_plugs_its_plan_in():
    bus = MemoryBus()
    assert bus.fault_hook is None
    test_bus = TestBus(bus)
    assert bus.fault_hook == test_bus.faults.apply
