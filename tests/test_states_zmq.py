"""States over real ZeroMQ on 127.0.0.1: a producer's out-state, a consumer's in-state.

Every test runs real services on free ports and waits on conditions with deadlines.
Faults are injected where the consumer receives, through the shipped `FaultyTransport`.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import types
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
import zmq
from helpers import free_port, wait_until

from service_framework import ArgumentError, Service
from service_framework.states.merge import merge_patch
from service_framework_testing.faulty import FaultyTransport

HB = 0.2  # heartbeat interval of the producers here
BOOK = {"asks": {Decimal: Decimal}, "bids": {Decimal: Decimal}}
OPTIONAL = {"updated_time": datetime}
T0 = datetime(2030, 1, 1, tzinfo=timezone.utc)
EMPTY_BOOK = {"asks": {}, "bids": {}, "is_snapshot": True}


def book_deltas(count: int, seed: int = 7) -> list[dict]:
    """A deterministic stream of order-book deltas; about a third delete a level."""
    rng = random.Random(seed)
    levels: dict[str, set] = {"asks": set(), "bids": set()}
    deltas = []
    for number in range(count):
        side = rng.choice(("asks", "bids"))
        if levels[side] and rng.random() < 0.35:
            price = rng.choice(sorted(levels[side]))
            levels[side].discard(price)
            deltas.append({side: {price: None}})
        else:
            price = Decimal(rng.randint(1000, 1060)) / 10
            levels[side].add(price)
            deltas.append({side: {price: Decimal(rng.randint(1, 900)) / 100},
                           "updated_time": T0 + timedelta(milliseconds=number)})
    return deltas


def wait_for(condition, timeout: float = 3.0, what: str = "condition") -> float:
    """Waits (with a deadline) until `condition` holds; returns the seconds it took."""
    start = time.monotonic()
    wait_until(condition, timeout, message=what)
    return time.monotonic() - start


# -- the services -------------------------------------------------------------------------
def producer_module(state_type: str = "delta_update_out", main=None, **models) -> types.ModuleType:
    module = types.ModuleType("producer")
    module.state_models = {"out": {"book": {
        "state_type": state_type, "required_arguments": BOOK, "optional_arguments": OPTIONAL,
        "optional_creation_arguments": {"heartbeat_s": HB}, **models}}}
    if main is not None:
        module.main = main
    return module


def consumer_module(state_type: str = "delta_update_in", on_update=None) -> types.ModuleType:
    module = types.ModuleType("consumer")
    creation = {"snapshot_timeout_s": 0.3, "heartbeat_s": HB}
    if on_update is not None:
        creation["on_update"] = on_update
    module.state_models = {"in": {"book": {
        "state_type": state_type, "required_arguments": BOOK, "optional_arguments": OPTIONAL,
        "optional_creation_arguments": creation}}}
    module.connection_models = {"in": {"read": {
        "connection_type": "replyer",
        "required_creation_arguments": {"on_new_request": read_book}}}}
    return module


def read_book(args, to_send, states, config):
    return {"book": dict(states["book"])}


def reader_module() -> types.ModuleType:
    module = types.ModuleType("reader")
    module.connection_models = {"out": {"read": {
        "connection_type": "requester", "optional_creation_arguments": {"timeout_s": 1.0}}}}
    return module


class Topology:
    """A producer, a consumer and a reader (a requester of the consumer's replyer)."""

    def __init__(self) -> None:
        ports: set[int] = set()
        while len(ports) < 3:
            ports.add(free_port())
        pub, rep, read = (f"127.0.0.1:{port}" for port in sorted(ports))
        self.producer_addresses = {"states": {"out": {"book": {"publisher": pub,
                                                               "replyer": rep}}}}
        self.consumer_addresses = {
            "states": {"in": {"book": {"subscriber": pub, "requester": rep}}},
            "connections": {"in": {"read": {"replyer": read}}}}
        self.reader_addresses = {"connections": {"out": {"read": {"requester": read}}}}
        self.services: list[Service] = []

    def _start(self, module, addresses, *, main_mode=False, transport=None) -> Service:
        deadline = time.monotonic() + 3.0
        while True:  # a port a stopped service just closed can take a moment to free
            service = Service(service_module=module, addresses=addresses, transport=transport)
            try:
                service.run_service_as_main() if main_mode else service.run_service()
            except zmq.ZMQError as error:
                if error.errno != zmq.EADDRINUSE or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
                continue
            self.services.append(service)
            return service

    def producer(self, module=None, *, main_mode=False) -> Service:
        return self._start(module or producer_module(), self.producer_addresses,
                           main_mode=main_mode)

    def consumer(self, module=None, *, transport=None) -> Service:
        return self._start(module or consumer_module(), self.consumer_addresses,
                           transport=transport)

    def reader(self) -> Service:
        return self._start(reader_module(), self.reader_addresses)

    def stop_all(self) -> None:
        for service in reversed(self.services):
            service.stop_service()


@pytest.fixture
def topology():
    topology = Topology()
    yield topology
    topology.stop_all()


def out_state(service):
    return service.runtime.out_states["book"]


def in_state(service):
    return service.runtime.in_states["book"]


def send(service, args):
    return service.runtime.to_send("state", "book", args)


def subscribed(consumer) -> None:
    """In sync, and a heartbeat came through: the producer publishes to this consumer."""
    state = in_state(consumer)
    wait_for(lambda: state.synced and state.heartbeats >= 1, what="the consumer to subscribe")


def converged(consumer, producer, timeout: float = 3.0) -> float:
    state, source = in_state(consumer), out_state(producer)
    took = wait_for(lambda: state.synced and state.sync.epoch == source.epoch
                    and state.seq == source.seq, timeout, what="the in-state to converge")
    assert state.value == source.value
    return took


# -- acceptance -----------------------------------------------------------------------------
def test_thousand_deltas_are_applied_in_order_with_no_snapshot_after_the_first(topology):
    producer = topology.producer()
    consumer = topology.consumer()
    subscribed(consumer)
    events = []
    consumer.runtime.event_listeners.append(events.append)
    deltas = book_deltas(1000)
    assert sum(None in d.get(side, {}).values() for d in deltas for side in BOOK) > 200
    send(producer, EMPTY_BOOK)
    for delta in deltas:
        send(producer, delta)
    converged(consumer, producer)
    state = in_state(consumer)
    assert state.value == out_state(producer).value and state.seq == 1001
    assert state.snapshot_requests == 1
    assert (state.out_of_sync, state.ignored, state.bad_updates) == (0, 0, 0)
    applied = [e.payload["seq"] for e in events if e.dir == "in" and e.kind == "state"]
    assert applied == list(range(1, 1002))


def test_deltas_delete_levels_on_the_consumer(topology):
    producer, consumer = topology.producer(), topology.consumer()
    subscribed(consumer)
    price = Decimal("100.5")
    send(producer, {"asks": {price: Decimal("1")}, "bids": {}, "is_snapshot": True})
    send(producer, {"asks": {price: None, Decimal("101"): Decimal("2")}})
    converged(consumer, producer)
    assert in_state(consumer).value == {"asks": {Decimal("101"): Decimal("2")}, "bids": {}}


def test_a_consumer_started_after_500_deltas_converges(topology):
    sent, release = threading.Event(), threading.Event()

    def main(to_send, states, config):
        to_send("state", "book", EMPTY_BOOK)
        for delta in book_deltas(500, seed=11):
            to_send("state", "book", delta)
        sent.set()
        release.wait(10)

    producer = topology.producer(producer_module(main=main), main_mode=True)
    try:
        assert sent.wait(5)
        consumer = topology.consumer()
        converged(consumer, producer)
        assert in_state(consumer).seq == 501 and in_state(consumer).snapshot_requests == 1
    finally:
        release.set()


def test_a_dropped_update_in_the_middle_is_recovered_by_one_snapshot(topology, caplog):
    faulty = FaultyTransport()
    drop = faulty.faults.drop(seq=300)
    producer, consumer = topology.producer(), topology.consumer(transport=faulty)
    subscribed(consumer)
    with caplog.at_level(logging.INFO, logger="service_framework"):
        send(producer, EMPTY_BOOK)
        for delta in book_deltas(600):
            send(producer, delta)
        took = converged(consumer, producer)
    assert took < 2 * HB, f"recovered {took:.3f}s after the last update"
    state = in_state(consumer)
    assert drop.hits == 1 and state.snapshot_requests == 2 and state.out_of_sync == 1
    assert "out of sync: gap: expected seq 300, got 301" in caplog.text
    assert "in sync" in caplog.text


def test_a_lost_last_update_is_recovered_within_two_heartbeats(topology, caplog):
    faulty = FaultyTransport()
    producer, consumer = topology.producer(), topology.consumer(transport=faulty)
    subscribed(consumer)
    deltas = book_deltas(100)
    faulty.faults.drop(seq=len(deltas) + 1)  # the tail: nothing follows it
    send(producer, EMPTY_BOOK)
    for delta in deltas:
        send(producer, delta)
    took = converged(consumer, producer, timeout=2.0)
    assert took < 2 * HB, f"recovered in {took:.3f}s"
    assert "lost tail" in caplog.text and in_state(consumer).snapshot_requests == 2


def test_duplicates_and_stale_updates_change_nothing(topology):
    faulty = FaultyTransport()
    faulty.faults.duplicate(seq={10, 20})  # twice in a row
    faulty.faults.duplicate(seq=30, later=50)  # a stale copy, long after
    producer, consumer = topology.producer(), topology.consumer(transport=faulty)
    subscribed(consumer)
    send(producer, EMPTY_BOOK)
    for delta in book_deltas(200):
        send(producer, delta)
    converged(consumer, producer)
    state = in_state(consumer)
    assert state.ignored == 3
    assert state.snapshot_requests == 1 and state.out_of_sync == 0


def test_reordered_updates_are_recovered(topology):
    faulty = FaultyTransport()
    faulty.faults.reorder(seq=50, later=2)
    producer, consumer = topology.producer(), topology.consumer(transport=faulty)
    subscribed(consumer)
    send(producer, EMPTY_BOOK)
    for delta in book_deltas(200):
        send(producer, delta)
    converged(consumer, producer)
    assert in_state(consumer).out_of_sync == 1


def test_a_restarted_producer_is_followed_in_its_new_epoch(topology, caplog):
    producer = topology.producer()
    consumer = topology.consumer()
    subscribed(consumer)
    send(producer, EMPTY_BOOK)
    for delta in book_deltas(100):
        send(producer, delta)
    converged(consumer, producer)
    old_epoch = out_state(producer).epoch
    producer.stop_service()

    restarted = topology.producer()
    assert out_state(restarted).epoch != old_epoch
    send(restarted, {"asks": {Decimal("1"): Decimal("1")}, "bids": {}, "is_snapshot": True})
    for delta in book_deltas(50, seed=3):
        send(restarted, delta)
    converged(consumer, restarted)
    assert in_state(consumer).seq == 51
    assert "out of sync" in caplog.text


def test_producer_down_consumer_serves_its_last_value_and_recovers(topology, caplog):
    producer, consumer, reader = topology.producer(), topology.consumer(), topology.reader()
    subscribed(consumer)
    send(producer, EMPTY_BOOK)
    for delta in book_deltas(50):
        send(producer, delta)
    converged(consumer, producer)
    last = dict(out_state(producer).value)
    producer.stop_service()

    state = in_state(consumer)
    wait_for(lambda: not state.synced, timeout=2.0, what="the consumer to report not in sync")
    assert "out of sync: timeout" in caplog.text
    wait_for(lambda: state.snapshot_timeouts >= 2, what="snapshot retries")  # Lazy Pirate
    for _ in range(3):  # the loop is never blocked: its replyer answers at once
        started = time.monotonic()
        reply = reader.runtime.to_send("connection", "read", {})
        assert reply == {"book": last} and time.monotonic() - started < 0.5
    assert not state.synced and state.value == last

    back = topology.producer()
    send(back, {"asks": {}, "bids": {Decimal("9"): Decimal("9")}, "is_snapshot": True})
    converged(consumer, back, timeout=3.0)
    assert reader.runtime.to_send("connection", "read", {})["book"] == out_state(back).value


# -- behaviour around the protocol ------------------------------------------------------
def test_on_update_runs_after_each_applied_update_and_its_errors_never_stop_the_loop(
        topology, caplog):
    seen = []

    def on_update(args, to_send, states, config):
        seen.append((args, dict(states["book"])))
        if len(seen) == 3:
            raise RuntimeError("handler bug")

    producer = topology.producer()
    consumer = topology.consumer(consumer_module(on_update=on_update))
    subscribed(consumer)
    send(producer, EMPTY_BOOK)
    deltas = book_deltas(10)
    for delta in deltas:
        send(producer, delta)
    converged(consumer, producer)
    assert seen[0] == ({}, {})  # the initial snapshot, at seq 0
    assert [args for args, _ in seen[2:]] == deltas
    assert seen[-1][1] == out_state(producer).value  # the value includes the update
    assert "on_update raised RuntimeError" in caplog.text


def test_a_bad_update_is_dropped_counted_and_recovered(topology):
    faulty = FaultyTransport()
    faulty.faults.tamper(lambda frames: [frames[0], b"\xc1 not msgpack"], seq=5)
    producer, consumer = topology.producer(), topology.consumer(transport=faulty)
    subscribed(consumer)
    send(producer, EMPTY_BOOK)
    for delta in book_deltas(20):
        send(producer, delta)
    converged(consumer, producer)
    state = in_state(consumer)
    assert state.bad_updates == 1 and consumer.runtime.counters["bad_state_updates"] == 1


def test_invalid_updates_are_refused_before_anything_changes(topology):
    producer = topology.producer()
    with pytest.raises(ArgumentError, match="asks"):
        send(producer, {"asks": {"not a decimal": Decimal(1)}})
    with pytest.raises(ArgumentError, match="bids"):  # a snapshot is a whole value
        send(producer, {"asks": {}, "is_snapshot": True})
    assert out_state(producer).seq == 0 and out_state(producer).value == {}


def test_full_update_states_follow_whole_values(topology):
    producer = topology.producer(producer_module("full_update_out"))
    consumer = topology.consumer(consumer_module("full_update_in"))
    subscribed(consumer)
    value: dict = {"asks": {}, "bids": {}}
    for delta in book_deltas(100):
        merge_patch(value, delta)
        send(producer, value)
    converged(consumer, producer)
    assert in_state(consumer).value == value


def test_a_0_0_12_model_with_current_num_and_is_snapshot_loads_and_runs(topology):
    legacy = {"required_state_arguments": {"current_num": int, "is_snapshot": bool}}
    producer = topology.producer(producer_module(**legacy))
    consumer = topology.consumer()
    subscribed(consumer)
    send(producer, {**EMPTY_BOOK, "current_num": 0})
    send(producer, {"asks": {Decimal(2): Decimal(3)}, "current_num": 17, "is_snapshot": False})
    converged(consumer, producer)
    assert out_state(producer).seq == 2  # the framework numbers updates, not current_num
    assert in_state(consumer).value == {"asks": {Decimal(2): Decimal(3)}, "bids": {}}


def test_the_topic_creation_argument_names_the_wire_topic(topology):
    topics: list[bytes] = []
    faulty = FaultyTransport()
    faulty.faults.drop(kind=("delta", "heartbeat"),  # records their topics, drops nothing
                       when=lambda frames: topics.append(frames[0]) and False)
    producer = topology.producer(producer_module(
        optional_creation_arguments={"heartbeat_s": HB, "topic": "md.book"}))
    consumer_side = consumer_module()
    consumer_side.state_models["in"]["book"]["optional_creation_arguments"]["topic"] = "md.book"
    consumer = topology.consumer(consumer_side, transport=faulty)
    subscribed(consumer)
    send(producer, EMPTY_BOOK)
    converged(consumer, producer)
    assert set(topics) == {b"md.book"}


@pytest.mark.parametrize("kind", ["delta_update", "full_update"])
def test_by_default_updates_and_heartbeats_travel_on_the_empty_topic(topology, kind):
    """No `topic`: as in 0.0.12, state updates and heartbeats are `[b"", body]`."""
    frames_seen: list[tuple[bytes, int]] = []
    faulty = FaultyTransport()
    faulty.faults.drop(kind=("delta", "heartbeat"),  # records them, drops nothing
                       when=lambda frames: frames_seen.append((frames[0], len(frames))) and False)
    producer = topology.producer(producer_module(f"{kind}_out"))
    consumer = topology.consumer(consumer_module(f"{kind}_in"), transport=faulty)
    assert out_state(producer).topic == in_state(consumer).topic == b""
    subscribed(consumer)  # a heartbeat on the empty topic came through
    heartbeats = in_state(consumer).heartbeats
    send(producer, EMPTY_BOOK)
    send(producer, {"asks": {Decimal(1): Decimal(2)}, "bids": {}})
    converged(consumer, producer)
    wait_for(lambda: in_state(consumer).heartbeats > heartbeats, what="a heartbeat after them")
    assert in_state(consumer).value == {"asks": {Decimal(1): Decimal(2)}, "bids": {}}
    assert len(frames_seen) >= 3 and set(frames_seen) == {(b"", 2)}


def test_states_mapping_holds_the_live_values_read_only(topology):
    producer, consumer = topology.producer(), topology.consumer()
    subscribed(consumer)
    send(producer, EMPTY_BOOK)
    converged(consumer, producer)
    assert producer.runtime.states["book"] is out_state(producer).value
    assert consumer.runtime.states["book"] is in_state(consumer).value
    with pytest.raises(TypeError):
        consumer.runtime.states["book"] = {}
