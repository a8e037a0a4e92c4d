"""Faults that act in time (issue "Faults that act in time"): a plan entry fires at a virtual
time, after the nth delivery on a link or on a delivered message, mid-run and the same way
for a seed; `time.sleep` in services moves virtual time; `stall` makes a slow consumer;
`heal()` ends every fault; the plan says what it did and what it holds as Python."""

import time
import types
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from helpers import free_port, wait_until

from service_framework import RequestTimeout, Service, ServiceCrashed
from service_framework.transport.base import SocketKind
from service_framework.transport.memory import MemoryBus
from service_framework_testing import FaultyTransport, TestBus

SERVICES = Path(__file__).parent / "services"
ECHO = Path(__file__).parents[1] / "examples" / "echo" / "replyer.py"
START = datetime(2030, 1, 1, tzinfo=timezone.utc)
ECHO_AT = {"connections": {"in": {"echo": {"replyer": "127.0.0.1:7400"}}}}
CLIENT_AT = {"connections": {"out": {"echo": {"requester": "127.0.0.1:7400"}}}}
INVENTORY_AT = {"connections": {"in": {"reserve": {"replyer": "127.0.0.1:7601"},
                                       "commit": {"replyer": "127.0.0.1:7602"}}}}
BOOKING_AT = {"connections": {"in": {"book": {"replyer": "127.0.0.1:7600"}},
                              "out": {"reserve": {"requester": "127.0.0.1:7601"},
                                      "commit": {"requester": "127.0.0.1:7602"}}}}
PUBLISHER_AT = {"connections": {"out": {"ticks": {"publisher": "127.0.0.1:7500"}}}}
SUBSCRIBER_AT = {"connections": {"in": {"ticks": {"subscriber": ["127.0.0.1:7500"]}}}}


def module(harness):
    return harness.service.definition.module


def echo_and_client(bus, *, count=6):
    replyer = bus.service(ECHO, addresses=ECHO_AT, config={"prefix": "> "})
    client = bus.service(SERVICES / "paced_client.py", addresses=CLIENT_AT,
                         config={"count": count, "interval_s": 1.0}, main_mode=True)
    return replyer, client


def tick_counter(name: str) -> types.ModuleType:
    """A subscriber of the paced publisher's ticks that notes (n, time.monotonic())."""
    counter = types.ModuleType(name)
    counter.RECEIVED = []

    def on_tick(args, to_send, states, config):
        counter.RECEIVED.append((args["n"], time.monotonic()))

    counter.connection_models = {"in": {"ticks": {
        "connection_type": "subscriber",
        "required_creation_arguments": {"on_new_message": on_tick},
        "required_arguments": {"n": int, "at": datetime, "monotonic": float}}}}
    return counter


def publisher(bus, count: int, interval_s: float):
    return bus.service(SERVICES / "paced_publisher.py", addresses=PUBLISHER_AT,
                       config={"count": count, "interval_s": interval_s}, main_mode=True)


# -- 1. faults at a virtual time or an event, mid-run ---------------------------------------
def test_a_partition_at_a_virtual_time_cuts_a_running_main_and_ends_by_itself(sf_bus):
    _, client = echo_and_client(sf_bus)
    cut = sf_bus.faults.partition("paced_client", "replyer", seconds=2, at=2.5)
    assert sf_bus.faults.describe() == [
        'sf_bus.faults.partition("paced_client", "replyer", seconds=2, at=2.5)']
    assert client.run_main() == [(0, "ok", 0.0), (1, "ok", 1.0), (2, "ok", 2.0),
                                 (3, "timeout", 3.0),  # cut from 2.5 until 4.5
                                 (4, "ok", 4.5), (5, "ok", 5.5)]
    assert cut.hits == 1 and cut.until == 4.5
    assert sf_bus.faults.log == [
        'sf_bus.faults.partition("paced_client", "replyer", seconds=2, at=2.5)']
    assert sf_bus.faults.describe() == []  # over


def test_a_crash_after_a_delivery_lands_between_two_requests_of_one_handler(sf_bus):
    inventory = sf_bus.service(SERVICES / "inventory.py", addresses=INVENTORY_AT)
    booking = sf_bus.service(SERVICES / "booking.py", addresses=BOOKING_AT)
    # The reserve's reply reaches booking, and booking dies before it sends the commit.
    sf_bus.faults.crash("booking", after=("inventory", "booking", 1))
    with pytest.raises(RequestTimeout):
        booking.request("book", {"seat": "1A"})
    assert module(inventory).SEATS == {"reserved": ["1A"], "committed": []}
    assert not booking.running and sf_bus.faults.crashed == ["booking"]

    sf_bus.faults.restart("booking", at=10)
    sf_bus.advance(10)
    assert booking.request("book", {"seat": "1B"}) == {"seat": "1B"}
    assert module(inventory).SEATS == {"reserved": ["1A", "1B"], "committed": ["1B"]}
    assert sf_bus.faults.log == [
        'sf_bus.faults.crash("booking", after=("inventory", "booking", 1))  # t=0.000000',
        'sf_bus.faults.restart("booking", at=10)']


def test_a_crash_on_a_matching_delivery_takes_the_service_down_before_it_reads_it(sf_bus):
    replyer, client = echo_and_client(sf_bus, count=4)
    sf_bus.faults.crash("replyer", on=lambda packet: b"tick 2" in packet.frames[-1])
    results = client.run_main()
    assert [outcome for _, outcome, _ in results] == ["ok", "ok", "timeout", "timeout"]
    assert not replyer.running
    assert sf_bus.faults.log == ['sf_bus.faults.crash("replyer", on=lambda packet: b"tick 2" '
                                 'in packet.frames[-1])  # t=2.000000']


def test_a_service_crashed_while_its_main_runs_is_unwound_and_not_a_leak(sf_bus):
    replyer, client = echo_and_client(sf_bus)
    sf_bus.faults.crash("paced_client", at=2.5)  # asleep between two requests
    with pytest.raises(ServiceCrashed, match="paced_client"):
        client.run_main()
    assert not client.running and replyer.running
    assert sf_bus.clock.monotonic() == 2.5  # unwound in its sleep, as the crash came


def test_rules_start_at_a_time_and_the_plan_lists_what_is_to_come(sf_bus):
    _, client = echo_and_client(sf_bus, count=4)
    faults = sf_bus.faults
    drop = faults.drop(link=("paced_client", "replyer"), at=1.5, times=1)
    heal = faults.heal(at=10)
    assert faults.describe() == [
        'sf_bus.faults.drop(link=("paced_client", "replyer"), times=1, at=1.5)',
        "sf_bus.faults.heal(at=10)"]
    assert [outcome for _, outcome, _ in client.run_main()] == ["ok", "ok", "timeout", "ok"]
    assert drop.hits == 1 and heal.fired_at is None
    assert faults.describe() == [
        'sf_bus.faults.drop(link=("paced_client", "replyer"), times=1, at=1.5)',  # in force
        "sf_bus.faults.heal(at=10)"]
    sf_bus.advance(10)
    assert faults.describe() == [] and heal.fired_at == 10
    assert faults.log == [
        'sf_bus.faults.drop(link=("paced_client", "replyer"), times=1, at=1.5)',
        "sf_bus.faults.heal(at=10)"]


def _scenario(seed: int) -> tuple[list[str], list[str], list]:
    bus = TestBus(MemoryBus(seed=seed, start=START))
    try:
        replyers = [bus.service(ECHO, config={"prefix": f"{n}:"}, addresses={
            "connections": {"in": {"echo": {"replyer": f"127.0.0.1:{9100 + n}"}}}})
            for n in range(2)]
        client = bus.service(SERVICES / "paced_client.py", main_mode=True,
                             config={"count": 8, "interval_s": 0.25}, addresses={
                                 "connections": {"out": {"echo": {"requester": [
                                     "127.0.0.1:9100", "127.0.0.1:9101"]}}}})
        bus.faults.drop(link=("paced_client", "replyer"), probability=0.3, at=0.5)
        bus.faults.crash("replyer", after=("paced_client", "replyer", 3))
        bus.faults.restart("replyer", at=1.2)
        results = client.run_main()
        assert len(replyers) == 2
        return list(bus.deliveries), list(bus.faults.log), results
    finally:
        bus.close()


def test_timed_faults_fire_the_same_way_for_a_seed():
    first, again = _scenario(11), _scenario(11)
    assert first == again
    assert first[1][1:] == ['sf_bus.faults.crash("replyer", after=("paced_client", '
                            '"replyer", 3))  # t=0.500000',
                            'sf_bus.faults.restart("replyer", at=1.2)']


def test_a_trigger_is_one_of_at_after_on_and_needs_the_memory_bus(sf_bus):
    with pytest.raises(ValueError, match="one trigger"):
        sf_bus.faults.drop(at=1, after=("a", "b", 1))
    with pytest.raises(ValueError, match=r"after= is \(from, to, n\)"):
        sf_bus.faults.crash("a", after=("a", "b", 0))
    faulty = FaultyTransport()
    with pytest.raises(ValueError, match="virtual time"):
        faulty.faults.crash("a", at=1.0)
    with pytest.raises(ValueError, match="memory bus"):
        faulty.faults.stall("a", 1.0)
    faulty.faults.partition("a", "b", seconds=5)  # ends on the wall clock: no scheduler
    assert faulty.faults.log == ['faulty.faults.partition("a", "b", seconds=5)']


# -- 3. virtual sleep -----------------------------------------------------------------------
def test_time_sleep_in_a_service_paces_it_in_virtual_time(sf_bus):
    counter = tick_counter("counter")
    sf_bus.service(counter, addresses=SUBSCRIBER_AT)
    producer = publisher(sf_bus, count=4, interval_s=0.5)
    before = time.monotonic()  # the test's own code reads the frozen clock too
    last = producer.run_main()
    assert sf_bus.clock.monotonic() == 2.0
    assert last == (START + timedelta(seconds=2)).timestamp()  # main's time.time()
    assert [n for n, _ in counter.RECEIVED] == [0, 1, 2, 3]
    assert [round(at - before, 6) for _, at in counter.RECEIVED] == [0.0, 0.5, 1.0, 1.5]
    time.sleep(0.001)  # the test's own sleep is real: virtual time stays
    assert sf_bus.clock.monotonic() == 2.0


def test_a_service_run_as_main_on_the_bus_sleeps_in_virtual_time_too(sf_bus):
    sf_bus.freeze_time()
    producer = Service(service_path=SERVICES / "paced_publisher.py", transport=sf_bus.bus,
                       config={"count": 3, "interval_s": 2.0}, addresses=PUBLISHER_AT,
                       console_loglevel="WARNING")
    producer.run_service_as_main()  # on the bus: main runs to its end before this returns
    assert producer.main_error is None and producer.wait_stopped(0)
    assert sf_bus.clock.monotonic() == 6.0


# -- stall: a slow consumer -------------------------------------------------------------------
def test_a_stalled_subscriber_gets_at_most_its_high_water_mark_and_its_neighbour_all(sf_bus):
    healthy, stalled = tick_counter("healthy"), tick_counter("stalled")
    sf_bus.service(healthy, addresses=SUBSCRIBER_AT)
    sf_bus.service(stalled, addresses=SUBSCRIBER_AT)
    sf_bus.faults.stall("stalled", 100)
    publisher(sf_bus, count=1200, interval_s=0.001).run_main()
    assert len(healthy.RECEIVED) == 1200 and stalled.RECEIVED == []
    assert sf_bus.faults.describe() == ['sf_bus.faults.stall("stalled", until=100.0)']
    sf_bus.advance(100)
    assert [n for n, _ in stalled.RECEIVED] == list(range(1000))  # the hwm; the rest dropped
    assert {at for _, at in stalled.RECEIVED} == {START.timestamp() + 100}


def test_a_stall_at_a_time_holds_what_arrives_until_it_ends(sf_bus):
    slow = tick_counter("slow")
    sf_bus.service(slow, addresses=SUBSCRIBER_AT)
    sf_bus.faults.stall("slow", 2, at=1)
    publisher(sf_bus, count=10, interval_s=0.5).run_main()
    start = START.timestamp()
    assert [round(at - start, 6) for _, at in slow.RECEIVED] == [
        0.0, 0.5, 3.0, 3.0, 3.0, 3.0, 3.0, 3.5, 4.0, 4.5]
    assert sf_bus.faults.log == ['sf_bus.faults.stall("slow", 2, at=1)']


# -- 5. heal ends every fault ----------------------------------------------------------------
def test_heal_ends_every_fault_and_delivers_what_was_held_at_once(sf_bus):
    bus, faults = sf_bus.bus, sf_bus.faults
    pub = bus.socket(SocketKind.XPUB, owner="a.pub")
    pub.bind("tcp://127.0.0.1:7700")
    sub = bus.socket(SocketKind.SUB, owner="b.sub")
    sub.connect("tcp://127.0.0.1:7700")
    sub.subscribe(b"")
    faults.delay(60, link=("a", "b"), nth={0, 1})
    faults.reorder(link=("a", "b"), later=10, nth=2)
    faults.drop(link=("a", "b"), nth=3)
    faults.partition("a", "c")
    for n in range(5):
        pub.send([b"t", bytes([n])])
    assert [sub.recv()[1] for _ in range(1)] == [b"\x04"] and sub.recv() is None
    faults.heal()
    assert faults.rules == [] and faults.describe() == []
    assert [sub.recv()[1] for _ in range(3)] == [b"\x00", b"\x01", b"\x02"]  # 3 was lost
    pub.send([b"t", b"\x05"])
    assert sub.recv() == [b"t", b"\x05"] and sub.recv() is None
    sf_bus.advance(100)
    assert sub.recv() is None  # nothing delayed is left to arrive twice
    assert bus.clock.monotonic() == 100.0
    pub.close()
    sub.close()


def test_heal_ends_a_stall_and_a_partition_of_services(sf_bus):
    _, client = echo_and_client(sf_bus, count=2)
    slow = tick_counter("slow")
    sf_bus.service(slow, addresses=SUBSCRIBER_AT)
    sf_bus.faults.stall("slow")  # until healed
    sf_bus.faults.partition("paced_client", "replyer")
    assert [outcome for _, outcome, _ in client.run_main()] == ["timeout", "timeout"]
    publisher(sf_bus, count=3, interval_s=0.0).run_main()
    assert slow.RECEIVED == []
    sf_bus.faults.heal()
    sf_bus.run_until_idle()
    assert [n for n, _ in slow.RECEIVED] == [0, 1, 2]
    assert [outcome for _, outcome, _ in client.run_main()] == ["ok", "ok"]
    assert sf_bus.faults.log[-1] == "sf_bus.faults.heal()"


def test_clear_heals_and_forgets_what_is_scheduled(sf_bus):
    replyer, _ = echo_and_client(sf_bus)
    sf_bus.faults.crash("replyer", at=5)
    sf_bus.faults.drop(link=("paced_client", "replyer"))
    sf_bus.faults.clear()
    assert sf_bus.faults.describe() == [] and sf_bus.faults.scheduled == []
    sf_bus.advance(10)
    assert replyer.running


def test_heal_over_zeromq_hands_delayed_and_held_messages_over_at_once():
    faulty = FaultyTransport()
    pub = faulty.socket(SocketKind.XPUB, owner="a.pub")
    sub = faulty.socket(SocketKind.SUB, owner="b.sub")
    poller = faulty.poller(owner="b")
    try:
        endpoint = pub.bind(f"tcp://127.0.0.1:{free_port()}")
        sub.connect(endpoint)
        sub.subscribe(b"")
        poller.register(sub)
        wait_until(pub.recv, message="the subscription")
        faulty.faults.delay(60, link=("a", "b"), nth=0)
        faulty.faults.reorder(link=("a", "b"), later=100, nth=1)
        for n in range(2):
            pub.send([b"t", bytes([n])])
        # Faults apply as the socket is read: both are taken in, one delayed, one held.
        delayed, held = faulty.faults.rules[:2]
        wait_until(lambda: sub.recv() is None and delayed.hits and held.hits,
                   message="both received, one delayed and one held")
        assert not poller.poll(0.05)
        faulty.faults.heal()
        received = []
        wait_until(lambda: poller.poll(0.05) and received.append(sub.recv()[1]) is None
                   and len(received) == 2, message="what heal() handed over")
        assert received == [b"\x00", b"\x01"] and faulty.faults.log[-1] == "faulty.faults.heal()"
    finally:
        poller.close()
        sub.close()
        pub.close()
