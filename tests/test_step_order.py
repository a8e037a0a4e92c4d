"""Within one step, in-state updates are applied before inbound requests are handled.

A reader service answers requests with its in-state's value. A state update and a request
are put in flight so that both are readable when the reader steps once; the reply must
show the update, whatever order the poller reports the two sockets in. On the memory bus
both are delivered before the reader steps; on ZeroMQ the test steps the reader's runtime
itself, once both messages are readable on its sockets.
"""

from __future__ import annotations

import pytest
import zmq
from helpers import endpoint, free_port, make_module, wait_until

from service_framework import Service
from service_framework.loader import load_service
from service_framework.runtime import Runtime
from service_framework.transport.base import SocketKind
from service_framework.transport.memory import MemoryBus
from service_framework.transport.zmq import ZmqTransport
from service_framework.wire.envelope import decode_reply, encode_request

MAX_BYTES = 1 << 20
ORDERS = ["as-polled", "reversed"]


def source_module():
    return make_module("price_source", state_models={"out": {"price": {
        "state_type": "full_update_out", "required_arguments": {"value": int},
        # No heartbeat within a test: on ZeroMQ, what the reader's subscriber holds is
        # then only the update the test sent.
        "optional_creation_arguments": {"heartbeat_s": 60.0}}}})


def read_price(args, to_send, states, config):
    return {"value": states["price"].get("value", -1)}


def reader_module():
    return make_module(
        "price_reader",
        state_models={"in": {"price": {"state_type": "full_update_in",
                                       "required_arguments": {"value": int}}}},
        connection_models={"in": {"read": {
            "connection_type": "replyer",
            "required_creation_arguments": {"on_new_request": read_price},
            "required_return_arguments": {"value": int}}}})


def addresses() -> tuple[dict, dict, str]:
    """The source's, the reader's, and the reader's replyer endpoint."""
    pub, rep, read = (endpoint(free_port()) for _ in range(3))
    source = {"states": {"out": {"price": {"publisher": pub, "replyer": rep}}}}
    reader = {"states": {"in": {"price": {"subscriber": pub, "requester": rep}}},
              "connections": {"in": {"read": {"replyer": read}}}}
    return source, reader, read


def poll_in(order: str, runtime: Runtime) -> None:
    """Makes the runtime's poller report readable sockets in `order`."""
    if order == "reversed":
        poll = runtime.poller.poll
        runtime.poller.poll = lambda timeout_s: list(reversed(poll(timeout_s)))


def request_body() -> bytes:
    return encode_request("w-read", {}, "r-read", max_bytes=MAX_BYTES)


def assert_shows_the_update(frames) -> None:
    """The reply was made after the update to 2 was applied."""
    reply = decode_reply(frames[-1], max_bytes=MAX_BYTES)
    assert reply.error is None and reply.return_args == {"value": 2}


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("seed", range(3))
def test_on_the_bus_a_request_sees_the_update_that_arrived_with_it(order, seed):
    bus = MemoryBus(seed=seed)
    source_addresses, reader_addresses, read = addresses()
    source = Service(service_module=source_module(), addresses=source_addresses,
                     transport=bus, console_loglevel="WARNING").run_service()
    reader = Service(service_module=reader_module(), addresses=reader_addresses,
                     transport=bus, console_loglevel="WARNING").run_service()
    client = bus.socket(SocketKind.DEALER, owner="client.read")
    try:
        poll_in(order, reader.runtime)
        client.connect(f"tcp://{read}")
        source.runtime.to_send("state", "price", {"value": 1})
        bus.run_until_idle()
        assert reader.runtime.states["price"] == {"value": 1}
        # Both delivered at once (the bus delivers in the sender's step); none handled yet.
        source.runtime.to_send("state", "price", {"value": 2})
        client.send([request_body()])
        assert len(reader.runtime.poller.ready()) == 2
        bus.run_until_idle()
        assert_shows_the_update(client.recv())
    finally:
        client.close()
        reader.stop_service()
        source.stop_service()


def readable(socket) -> bool:
    return bool(socket.raw.getsockopt(zmq.EVENTS) & zmq.POLLIN)


@pytest.mark.parametrize("order", ORDERS)
def test_on_zeromq_a_request_sees_the_update_that_arrived_with_it(order):
    source_addresses, reader_addresses, read = addresses()
    source = Service(service_module=source_module(), addresses=source_addresses,
                     console_loglevel="WARNING").run_service()
    # The reader's runtime is stepped here, one step at a time, on real sockets.
    runtime = Runtime(load_service(reader_module(), addresses=reader_addresses),
                      ZmqTransport())
    client = zmq.Context.instance().socket(zmq.DEALER)
    client.linger = 0
    try:
        runtime.open()
        poll_in(order, runtime)
        state = runtime.in_states["price"]

        def subscribed() -> bool:
            """In sync, then an update came through the subscriber. (One sent before the
            subscription reached the source is lost, and this is asked again.)"""
            runtime.step(0.01)
            if not state.synced:
                return False
            seq, snapshots = state.seq, state.snapshot_requests
            source.runtime.to_send("state", "price", {"value": 1})
            deadline = runtime.clock.monotonic() + 0.1
            while state.seq == seq and runtime.clock.monotonic() < deadline:
                runtime.step(0.01)
            return state.seq == seq + 1 and state.snapshot_requests == snapshots

        wait_until(subscribed, 5.0, message="the reader to subscribe")
        assert runtime.states["price"] == {"value": 1}
        assert not readable(state.subscriber)
        client.connect(f"tcp://{read}")
        source.runtime.to_send("state", "price", {"value": 2})
        client.send(request_body())
        replyer = runtime.in_connections["read"].socket
        wait_until(lambda: readable(state.subscriber) and readable(replyer), 5.0,
                   message="the update and the request readable on the reader's sockets")
        runtime.step(0)
        assert client.poll(5000), "no reply"
        assert_shows_the_update(client.recv_multipart())
    finally:
        client.close()
        runtime.close()
        source.stop_service()
