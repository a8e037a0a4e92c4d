"""Publisher and subscriber on real ZeroMQ sockets (127.0.0.1, free ports)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from helpers import ask, endpoint, free_port, make_module, wait_until


def publisher(connections: dict[str, dict]) -> Any:
    """Publisher connections: name -> creation arguments; every message is {'value': Any}."""
    return make_module("ticker", connection_models={"out": {
        name: {"connection_type": "publisher", "required_arguments": {"value": Any},
               "optional_creation_arguments": creation}
        for name, creation in connections.items()}})


def subscriber(name: str = "orders", *, value_type: Any = int, **creation: Any) -> Any:
    """A subscriber whose handler appends each message's value to `module.received`."""
    received: list = []
    module = make_module("listener", connection_models={"in": {name: {
        "connection_type": "subscriber",
        "required_creation_arguments": {
            "on_new_message": lambda args, to_send, states, config: received.append(
                args["value"]),
            **creation},
        "required_arguments": {"value": value_type},
    }}})
    module.received = received
    return module


def pub_addresses(ports: dict[str, int], *, key: str = "publisher") -> dict:
    return {"connections": {"out": {name: {key: endpoint(port)}
                                    for name, port in ports.items()}}}


def sub_addresses(name: str, ports: list[int]) -> dict:
    return {"connections": {"in": {name: {"subscriber": [endpoint(p) for p in ports]}}}}


def taken_off_the_socket(service: Any, name: str) -> int:
    return service.runtime.in_connections[name].received


def test_min_subscribers_handshake_loses_no_message(services):
    port = free_port()
    pub = services.start(publisher({"orders": {"min_subscribers": 2,
                                               "wait_for_subscribers_s": 5.0}}),
                         pub_addresses({"orders": port}))
    first, second = subscriber(), subscriber()
    services.start(first, sub_addresses("orders", [port]))
    services.start(second, sub_addresses("orders", [port]))
    for value in range(50):  # no sleep: the first send waits for both subscriptions
        assert ask(pub, "orders", {"value": value}) == {}
    wait_until(lambda: len(first.received) == 50 and len(second.received) == 50,
               message="50 messages at both subscribers")
    assert first.received == second.received == list(range(50))


def test_subscribers_started_before_the_publisher_get_everything(services):
    port = free_port()
    early = subscriber()
    services.start(early, sub_addresses("orders", [port]))
    pub = services.start(publisher({"orders": {"min_subscribers": 1}}),
                         pub_addresses({"orders": port}))
    for value in range(10):
        ask(pub, "orders", {"value": value})
    wait_until(lambda: len(early.received) == 10, message="10 messages")
    assert early.received == list(range(10))


def test_topic_matching_is_exact(services):
    """A subscriber of 'orders' also hears the 'orders_eu' socket but never handles it."""
    orders_port, eu_port = free_port(), free_port()
    pub = services.start(
        publisher({"orders": {"min_subscribers": 1, "topic": "orders"},
                   "orders_eu": {"min_subscribers": 1, "topic": "orders_eu"}}),
        pub_addresses({"orders": orders_port, "orders_eu": eu_port}))
    module = subscriber(topic="orders")
    listener = services.start(module, sub_addresses("orders", [orders_port, eu_port]))
    for value in range(5):
        ask(pub, "orders_eu", {"value": 1000 + value})  # ZMQ prefix filter lets these in
        ask(pub, "orders", {"value": value})
    wait_until(lambda: taken_off_the_socket(listener, "orders") == 10,
               message="10 messages taken off the subscriber socket")
    assert module.received == list(range(5))


def test_topic_creation_argument_sets_the_wire_topic(services):
    port = free_port()
    pub = services.start(publisher({"ticks": {"topic": "fx.eurusd", "min_subscribers": 1}}),
                         pub_addresses({"ticks": port}))
    module = subscriber("eurusd", topic="fx.eurusd")
    services.start(module, sub_addresses("eurusd", [port]))
    ask(pub, "ticks", {"value": 1})
    wait_until(lambda: module.received == [1], message="the message on topic fx.eurusd")


def test_by_default_differently_named_publisher_and_subscriber_match(services):
    """The default topic is the empty one, as in 0.0.12: a `publish_int` publisher and a
    `subscribe_int` subscriber on one address hear each other."""
    port = free_port()
    pub = services.start(publisher({"publish_int": {"min_subscribers": 1}}),
                         pub_addresses({"publish_int": port}))
    module = subscriber("subscribe_int")
    listener = services.start(module, sub_addresses("subscribe_int", [port]))
    assert pub.runtime.out_connections["publish_int"].topic == b""
    assert listener.runtime.in_connections["subscribe_int"].topic == b""
    for value in range(3):
        ask(pub, "publish_int", {"value": value})
    wait_until(lambda: module.received == [0, 1, 2], message="3 messages on the empty topic")


def test_a_subscriber_with_the_empty_topic_hears_every_topic_on_its_socket(services):
    port = free_port()
    pub = services.start(publisher({"ticks": {"topic": "fx.eurusd", "min_subscribers": 1}}),
                         pub_addresses({"ticks": port}))
    module = subscriber("all_ticks")
    services.start(module, sub_addresses("all_ticks", [port]))
    ask(pub, "ticks", {"value": 7})
    wait_until(lambda: module.received == [7], message="the fx.eurusd message")


def test_a_bad_message_is_dropped_and_the_next_good_one_handled(services):
    port = free_port()
    pub = services.start(publisher({"orders": {"min_subscribers": 1}}),
                         pub_addresses({"orders": port}))
    module = subscriber(value_type=Decimal)
    listener = services.start(module, sub_addresses("orders", [port]))
    ask(pub, "orders", {"value": "not a decimal"})
    ask(pub, "orders", {"value": Decimal("1.25")})
    wait_until(lambda: module.received, message="the good message")
    assert module.received == [Decimal("1.25")]
    assert listener.runtime.counters.get("bad_messages") == 1


def test_a_handler_that_raises_does_not_stop_the_subscriber(services):
    port = free_port()
    pub = services.start(publisher({"orders": {"min_subscribers": 1}}),
                         pub_addresses({"orders": port}))
    received: list = []

    def on_new_message(args, to_send, states, config):
        if args["value"] == 0:
            raise ZeroDivisionError("first one fails")
        received.append(args["value"])

    module = make_module("fragile", connection_models={"in": {"orders": {
        "connection_type": "subscriber",
        "required_creation_arguments": {"on_new_message": on_new_message},
        "required_arguments": {"value": int}}}})
    services.start(module, sub_addresses("orders", [port]))
    for value in range(3):
        ask(pub, "orders", {"value": value})
    wait_until(lambda: received == [1, 2], message="the messages after the failing one")


def test_is_binder_subscriber_with_a_connecting_publisher(services):
    port = free_port()
    module = subscriber(is_binder=True)
    services.start(module, {"connections": {"in": {"orders": {"subscriber": endpoint(port)}}}})
    pub = services.start(publisher({"orders": {"is_x_pub": True, "min_subscribers": 1}}),
                         pub_addresses({"orders": port}))
    for value in range(5):
        ask(pub, "orders", {"value": value})
    wait_until(lambda: len(module.received) == 5, message="5 messages at the binder")
    assert module.received == list(range(5))
