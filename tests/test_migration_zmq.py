"""Issue 15, items 3-5 over real ZeroMQ on 127.0.0.1 (the memory bus's are in
test_migration_states.py, the 0.0.12-style CLI scenarios in test_legacy_012.py).

An XPUB/XSUB bus is a pyzmq proxy (`zmq.proxy`) in a daemon thread of the test, bound to
free ports: publishers and out-states with `is_x_pub` connect to its XSUB side,
subscribers and in sides to its XPUB side; state snapshots go straight to the out side.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Iterator, NamedTuple

import pytest
import zmq
from helpers import endpoint, free_port, make_module, wait_until

from service_framework import Service

HB = 0.2  # heartbeat interval of the out-states here


class Proxy(NamedTuple):
    publishers: str  # its XSUB side: where `is_x_pub` sockets connect
    subscribers: str  # its XPUB side: where subscribers and in sides connect
    captured: list  # every message that crossed it towards the subscribers


@pytest.fixture
def proxy() -> Iterator[Proxy]:
    """A pyzmq XSUB/XPUB proxy on free ports, in a daemon thread, with a capture socket."""
    context = zmq.Context()
    xsub, xpub = context.socket(zmq.XSUB), context.socket(zmq.XPUB)
    capture, tap = context.socket(zmq.PAIR), context.socket(zmq.PAIR)
    for socket in (xsub, xpub, capture, tap):
        socket.linger = 0
    xsub.bind("tcp://127.0.0.1:0")
    xpub.bind("tcp://127.0.0.1:0")
    tap.bind(f"inproc://capture-{id(tap)}")
    capture.connect(f"inproc://capture-{id(tap)}")
    captured: list = []

    def run_proxy() -> None:
        try:
            zmq.proxy(xsub, xpub, capture)
        except zmq.ContextTerminated:
            pass
        finally:
            for socket in (xsub, xpub, capture):
                socket.close()

    def read_tap() -> None:
        try:
            while True:
                captured.append(tap.recv_multipart())
        except zmq.ContextTerminated:
            tap.close()

    threads = [threading.Thread(target=run_proxy, name="test-proxy", daemon=True),
               threading.Thread(target=read_tap, name="test-proxy-tap", daemon=True)]
    publishers = xsub.getsockopt_string(zmq.LAST_ENDPOINT)
    subscribers = xpub.getsockopt_string(zmq.LAST_ENDPOINT)
    for thread in threads:
        thread.start()
    try:
        yield Proxy(publishers, subscribers, captured)
    finally:
        context.term()  # ends both threads, which close their sockets
        for thread in threads:
            thread.join(5.0)


@pytest.fixture
def started() -> Iterator[list[Service]]:
    services: list[Service] = []
    yield services
    for service in reversed(services):
        service.stop_service()


def start(services: list[Service], module: Any, addresses: dict, *,
          main_mode: bool = False) -> Service:
    service = Service(service_module=module, addresses=addresses, console_loglevel="WARNING")
    services.append(service)
    return service.run_service_as_main() if main_mode else service.run_service()


def state_module(name: str, side: str, state_type: str, **creation: Any) -> Any:
    return make_module(name, state_models={side: {"counts": {
        "state_type": state_type, "required_arguments": {"total": int},
        "optional_arguments": {"seen": {str: int}},
        "optional_creation_arguments": {"heartbeat_s": HB, **creation}}}})


def subscriber_module(**creation: Any) -> Any:
    received: list = []
    module = make_module("listener", connection_models={"in": {"ticks": {
        "connection_type": "subscriber", "required_arguments": {"num": int},
        "required_creation_arguments": {
            "on_new_message": lambda args, to_send, states, config: received.append(
                args["num"]), **creation}}}})
    module.received = received
    return module


def publisher_module(**creation: Any) -> Any:
    return make_module("ticker", connection_models={"out": {"ticks": {
        "connection_type": "publisher", "required_arguments": {"num": int},
        "optional_creation_arguments": creation}}})


def send_state(service: Service, args: dict) -> None:
    service.runtime.to_send("state", "counts", args)


def timed(call: Any) -> float:
    began = time.monotonic()
    call()
    return time.monotonic() - began


# -- item 3: is_x_pub into an XSUB/XPUB bus ------------------------------------------------
def test_a_delta_out_state_with_is_x_pub_syncs_its_in_side_behind_a_proxy(proxy, started):
    replyer = endpoint(free_port())
    producer = start(started, state_module("producer", "out", "delta_update_out",
                                           is_x_pub=True),
                     {"states": {"out": {"counts": {"publisher": proxy.publishers,
                                                    "replyer": replyer}}}})
    out = producer.runtime.out_states["counts"]
    send_state(producer, {"total": 0, "seen": {}, "is_snapshot": True})
    for num in range(1, 6):  # before the in side exists: through the proxy to nobody
        send_state(producer, {"total": num, "seen": {str(num): num}})
    # (a timeout far above a loaded machine's delays: the test counts one request)
    consumer = start(started, state_module("consumer", "in", "delta_update_in",
                                           snapshot_timeout_s=5.0),
                     {"states": {"in": {"counts": {"subscriber": proxy.subscribers,
                                                   "requester": replyer}}}})
    state = consumer.runtime.in_states["counts"]
    # the snapshot comes straight from the out side's replyer …
    wait_until(lambda: state.synced and state.seq >= 6, message="the snapshot")
    assert state.value == {"total": 5, "seen": {str(n): n for n in range(1, 6)}}
    # … the updates through the proxy: the in side connects to nothing else
    wait_until(lambda: state.heartbeats >= 1, message="a heartbeat through the proxy")
    for num in range(6, 56):
        send_state(producer, {"total": num, "seen": {str(num): num}})
    wait_until(lambda: state.synced and state.seq == out.seq == 56,
               message="the in side to follow the deltas")
    assert state.value == out.value and state.value["total"] == 55
    assert state.snapshot_requests == 1 and state.out_of_sync == 0
    assert state.updates_applied >= 51  # the snapshot and every later delta
    crossed = [frames for frames in proxy.captured if frames[:1] == [b""]]
    assert len(crossed) >= 50  # the 50 deltas (and heartbeats) crossed the proxy


def test_an_out_state_with_is_x_pub_does_not_bind_its_publisher(proxy, started):
    """Two out-states (of two services) publish into one bus: nothing collides."""
    producers = [start(started, state_module(f"producer{i}", "out", "full_update_out",
                                             is_x_pub=True, topic=f"shard{i}"),
                       {"states": {"out": {"counts": {"publisher": proxy.publishers,
                                                      "replyer": endpoint(free_port())}}}})
                 for i in range(2)]
    consumers = [start(started, state_module(f"consumer{i}", "in", "full_update_in",
                                             topic=f"shard{i}"),
                       {"states": {"in": {"counts": {
                           "subscriber": proxy.subscribers,
                           "requester": producers[i].runtime.definition.addresses[
                               "states"]["out"]["counts"]["replyer"]}}}})
                 for i in range(2)]
    for i, producer in enumerate(producers):
        send_state(producer, {"total": 10 + i})
    for i, consumer in enumerate(consumers):
        state = consumer.runtime.in_states["counts"]
        wait_until(lambda state=state, i=i: state.synced and state.value == {"total": 10 + i},
                   message=f"consumer {i}")


def test_a_publisher_and_subscriber_through_a_proxy_lose_nothing(proxy, started):
    """`min_subscribers` through a proxy counts the subscription the proxy forwards."""
    subscriber = subscriber_module()
    start(started, subscriber, {"connections": {"in": {"ticks": {
        "subscriber": proxy.subscribers}}}})
    publisher = start(started, publisher_module(is_x_pub=True, min_subscribers=1,
                                                wait_for_subscribers_s=10.0),
                      {"connections": {"out": {"ticks": {"publisher": proxy.publishers}}}})
    took = timed(lambda: [publisher.runtime.to_send("connection", "ticks", {"num": num})
                          for num in range(20)])
    assert took < 5.0  # the forwarded subscription ended the wait, not the 10 s
    wait_until(lambda: len(subscriber.received) == 20, message="20 messages")
    assert subscriber.received == list(range(20))


def test_wait_after_creation_s_through_a_proxy_ends_with_the_forwarded_subscription(
        proxy, started, caplog):
    subscriber = subscriber_module()
    start(started, subscriber, {"connections": {"in": {"ticks": {
        "subscriber": proxy.subscribers}}}})
    publisher = start(started, publisher_module(is_x_pub=True, wait_after_creation_s=10.0),
                      {"connections": {"out": {"ticks": {"publisher": proxy.publishers}}}})
    with caplog.at_level(logging.WARNING, logger="service_framework"):
        took = timed(lambda: publisher.runtime.to_send("connection", "ticks", {"num": 1}))
    assert took < 5.0 and "subscriber(s) after" not in caplog.text
    wait_until(lambda: subscriber.received == [1], message="the first message")


# -- item 4: full-update states without a snapshot pair -------------------------------------
def test_full_states_without_a_snapshot_pair_sync_from_the_next_update(started, caplog):
    publisher_at = endpoint(free_port())
    with caplog.at_level(logging.WARNING, logger="service_framework"):
        producer = start(started, state_module("producer", "out", "full_update_out"),
                         {"states": {"out": {"counts": {"publisher": publisher_at}}}})
        consumer = start(started, state_module("consumer", "in", "full_update_in"),
                         {"states": {"in": {"counts": {"subscriber": publisher_at}}}})
    assert "out state 'counts' has no replyer address: no snapshots" in caplog.text
    assert "in state 'counts' has no requester address: no snapshots" in caplog.text
    out, state = producer.runtime.out_states["counts"], consumer.runtime.in_states["counts"]
    assert out.replyer is None
    wait_until(lambda: state.heartbeats >= 1, message="a heartbeat")
    assert not state.synced and state.snapshot_requests == 0  # nothing to ask
    send_state(producer, {"total": 1})
    wait_until(lambda: state.synced and state.value == {"total": 1}, message="the update")
    # a late joiner holds nothing until the next update, which is a whole value
    late = start(started, state_module("late", "in", "full_update_in"),
                 {"states": {"in": {"counts": {"subscriber": publisher_at}}}})
    late_state = late.runtime.in_states["counts"]
    wait_until(lambda: late_state.heartbeats >= 1, message="a heartbeat at the late joiner")
    assert not late_state.synced and late_state.value == {}
    send_state(producer, {"total": 2})
    for each in (state, late_state):
        wait_until(lambda each=each: each.synced and each.value == {"total": 2} and
                   each.seq == out.seq == 2, message="the next update")
    assert late_state.snapshot_requests == 0 and late_state.out_of_sync == 0


# -- item 5: wait_after_creation_s ----------------------------------------------------------
def test_an_out_state_waits_after_creation_for_its_in_side(started, caplog):
    """A 0.0.12 full state without snapshots relies on the wait: its in side, started
    first, gets the very first update; nobody is kept waiting the whole 10 s."""
    publisher_at = endpoint(free_port())
    consumer = start(started, state_module("consumer", "in", "full_update_in"),
                     {"states": {"in": {"counts": {"subscriber": publisher_at}}}})
    producer = start(started, state_module("producer", "out", "full_update_out",
                                           wait_after_creation_s=10.0),
                     {"states": {"out": {"counts": {"publisher": publisher_at}}}})
    with caplog.at_level(logging.WARNING, logger="service_framework"):
        took = timed(lambda: send_state(producer, {"total": 1}))
    assert took < 5.0 and "subscriber(s) after" not in caplog.text
    state = consumer.runtime.in_states["counts"]
    wait_until(lambda: state.synced and state.value == {"total": 1}, message="update 1")
    assert state.updates_applied == 1 and state.seq == 1


def test_a_publisher_with_nobody_to_wait_for_waits_its_time_once(started, caplog):
    publisher = start(started, publisher_module(wait_after_creation_s=0.3),
                      {"connections": {"out": {"ticks": {"publisher": endpoint(free_port())}}}})
    with caplog.at_level(logging.WARNING, logger="service_framework"):
        first = timed(lambda: publisher.runtime.to_send("connection", "ticks", {"num": 1}))
        second = timed(lambda: publisher.runtime.to_send("connection", "ticks", {"num": 2}))
    assert first >= 0.3 and second < 0.3
    assert "connection 'ticks': 0 of 1 subscriber(s) after 0.3s" in caplog.text


def test_stopping_a_service_whose_first_update_waits_ends_the_wait(started):
    """Main mode: `main` waits on the out-state's publisher; stopping the service closes
    the socket through the waiting thread, promptly, and `main` goes on to its end."""
    waiting, finished = threading.Event(), threading.Event()

    def main(to_send, config):
        waiting.set()
        to_send("state", "counts", {"total": 1})
        finished.set()

    module = state_module("producer", "out", "full_update_out", wait_after_creation_s=30.0)
    module.main = main
    producer = start(started, module, {"states": {"out": {"counts": {
        "publisher": endpoint(free_port())}}}}, main_mode=True)
    out = producer.runtime.out_states["counts"]
    wait_until(lambda: waiting.is_set() and out._waiting, message="main to wait")
    took = timed(producer.stop_service)
    wait_until(finished.is_set, message="main to end")
    assert took < 5.0 and out.publisher is None and out.sockets == []
