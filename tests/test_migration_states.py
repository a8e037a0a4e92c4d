"""Issue 15, items 3-5 on the memory bus (the CLI scenarios are in test_legacy_012.py)."""

import logging
import os
from pathlib import Path

import pytest
from helpers import make_module

from service_framework import ConfigError, ModelError
from service_framework.addresses import socket_needs
from service_framework.loader import load_service

SERVICES = Path(__file__).parent / "services"
FULL_OUT = {"states": {"out": {"num_state": {"publisher": "127.0.0.1:7601"}}}}
FULL_IN = {"states": {"in": {"num_state": {"subscriber": ["127.0.0.1:7601"]}}}}
DELTA_OUT = {"states": {"out": {"counts": {"publisher": "127.0.0.1:7605",
                                           "replyer": "127.0.0.1:7606"}}}}
DELTA_IN = {"states": {"in": {"counts": {"subscriber": ["127.0.0.1:7605"],
                                         "requester": ["127.0.0.1:7606"]}}}}


def test_a_full_update_state_without_a_snapshot_pair_syncs_from_the_next_update(sf_bus,
                                                                               caplog):
    with caplog.at_level(logging.WARNING):
        consumer = sf_bus.service(SERVICES / "legacy_full_in.py", addresses=FULL_IN)
        producer = sf_bus.service(SERVICES / "legacy_full_out.py", addresses=FULL_OUT,
                                  main_mode=True)
    assert "in state 'num_state' has no requester address: no snapshots" in caplog.text
    assert "out state 'num_state' has no replyer address: no snapshots" in caplog.text
    assert not consumer.is_synced("num_state")  # nothing to ask a snapshot of
    producer.run_main()
    assert consumer.is_synced("num_state") and consumer.states["num_state"] == {"num": 3}


def test_an_out_state_with_is_x_pub_connects_its_publisher_and_binds_its_replyer():
    definition = load_service(SERVICES / "legacy_full_out.py", addresses=FULL_OUT)
    spec = definition.states[("out", "num_state")]
    spec.creation["is_x_pub"] = True
    publisher, replyer = socket_needs("states", "out", spec)
    assert (publisher.key, publisher.binds) == ("publisher", False)
    assert (replyer.key, replyer.binds, replyer.optional) == ("replyer", True, True)


def test_wait_after_creation_s_waits_for_a_subscriber_in_virtual_time(sf_bus):
    publisher = sf_bus.service(SERVICES / "legacy_waiting_publisher.py", main_mode=True,
                               addresses={"connections": {"out": {"publish_int": {
                                   "publisher": "127.0.0.1:7602"}}}})
    started = sf_bus.clock.monotonic()
    publisher.run_main()  # nobody subscribed: it waited the whole 2 s, then sent
    assert sf_bus.clock.monotonic() - started >= 2.0


# -- item 4: delta states still need both; the harness's fake out side needs no replyer ----
def test_a_delta_state_still_needs_its_snapshot_pair():
    module = make_module("delta_out", state_models={"out": {"counts": {
        "state_type": "delta_update_out", "required_arguments": {"total": int}}}})
    with pytest.raises(ConfigError, match="missing address states.out.counts.replyer"):
        load_service(module, addresses={"states": {"out": {"counts": {
            "publisher": "127.0.0.1:7603"}}}})
    module = make_module("delta_in", state_models={"in": {"counts": {
        "state_type": "delta_update_in", "required_arguments": {"total": int}}}})
    with pytest.raises(ConfigError, match="missing address states.in.counts.requester"):
        load_service(module, addresses={"states": {"in": {"counts": {
            "subscriber": "127.0.0.1:7603"}}}})


def test_the_harness_feeds_a_full_in_state_without_a_requester(sf_bus):
    consumer = sf_bus.service(SERVICES / "legacy_full_in.py", addresses=FULL_IN)
    consumer.feed_state("num_state", {"num": 5})
    assert consumer.is_synced("num_state") and consumer.states["num_state"] == {"num": 5}
    assert consumer.runtime.in_states["num_state"].snapshot_requests == 0


# -- item 5: wait_after_creation_s, publishers and out-states, in virtual time --------------
def waiting_producer(wait_s: float, **creation) -> object:
    """A main-mode full-update out-state (publisher address only) with 0.0.12's wait."""
    def main(to_send, config):
        for num in range(1, 4):
            to_send("state", "num_state", {"num": num})
    return make_module("waiting_producer", main=main, state_models={"out": {"num_state": {
        "state_type": "full_update_out", "required_arguments": {"num": int},
        "optional_creation_arguments": {"wait_after_creation_s": wait_s, **creation}}}})


def waits(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "subscriber(s) after" in r.getMessage()]


def test_an_out_state_with_nobody_subscribed_waits_once_in_virtual_time(sf_bus, caplog):
    producer = sf_bus.service(waiting_producer(3600.0), addresses=FULL_OUT, main_mode=True)
    out = producer.runtime.out_states["num_state"]
    started, real_start = sf_bus.clock.monotonic(), os.times().elapsed  # unfrozen
    with caplog.at_level(logging.WARNING, logger="service_framework"):
        producer.run_main()
    assert sf_bus.clock.monotonic() - started >= 3600.0  # an hour of virtual time …
    assert os.times().elapsed - real_start < 30.0  # … not of real time
    assert waits(caplog) == ["state 'num_state': 0 of 1 subscriber(s) after 3.6e+03s; "
                             "publishing anyway"]  # the first update waited, the others not
    assert out.seq == 3 and out.value == {"num": 3}
    assert producer.runtime.closed  # main returned: the service stopped, as in production


def test_an_out_state_with_a_subscriber_does_not_wait(sf_bus, caplog):
    consumer = sf_bus.service(SERVICES / "legacy_full_in.py", addresses=FULL_IN)
    producer = sf_bus.service(waiting_producer(3600.0), addresses=FULL_OUT, main_mode=True)
    started = sf_bus.clock.monotonic()
    with caplog.at_level(logging.WARNING, logger="service_framework"):
        producer.run_main()
    assert sf_bus.clock.monotonic() - started < 1.0 and waits(caplog) == []
    in_state = consumer.runtime.in_states["num_state"]
    assert consumer.is_synced("num_state") and consumer.states["num_state"] == {"num": 3}
    assert in_state.updates_applied == 3  # the first update too: it waited for the consumer


def test_a_publisher_with_a_subscriber_ends_its_wait_at_once(sf_bus, caplog):
    received: list = []
    sf_bus.service(make_module("listener", connection_models={"in": {"publish_int": {
        "connection_type": "subscriber", "required_arguments": {"num": int},
        "required_creation_arguments": {
            "on_new_message": lambda args, to_send, states, config: received.append(args)}}}}),
        addresses={"connections": {"in": {"publish_int": {"subscriber": "127.0.0.1:7602"}}}})
    publisher = sf_bus.service(SERVICES / "legacy_waiting_publisher.py", main_mode=True,
                               addresses={"connections": {"out": {"publish_int": {
                                   "publisher": "127.0.0.1:7602"}}}})
    started = sf_bus.clock.monotonic()
    with caplog.at_level(logging.WARNING, logger="service_framework"):
        publisher.run_main()
    assert sf_bus.clock.monotonic() - started < 2.0 and waits(caplog) == []
    assert received == [{"num": 1}]


@pytest.mark.parametrize("kind", ["publisher", "out-state"])
def test_wait_after_creation_s_zero_waits_not_and_warns_not(sf_bus, caplog, kind):
    if kind == "publisher":
        module = make_module("zero", main=lambda to_send, config: to_send(
            "connection", "ticks", {"num": 1}), connection_models={"out": {"ticks": {
                "connection_type": "publisher", "required_arguments": {"num": int},
                "optional_creation_arguments": {"wait_after_creation_s": 0.0}}}})
        addresses = {"connections": {"out": {"ticks": {"publisher": "127.0.0.1:7604"}}}}
    else:
        module, addresses = waiting_producer(0.0), FULL_OUT
    service = sf_bus.service(module, addresses=addresses, main_mode=True)
    started = sf_bus.clock.monotonic()
    with caplog.at_level(logging.WARNING, logger="service_framework"):
        service.run_main()
    assert sf_bus.clock.monotonic() == started and waits(caplog) == []


def test_wait_after_creation_s_is_checked_at_load():
    with pytest.raises(ModelError, match=r"wait_after_creation_s: expected a number >= 0"):
        load_service(waiting_producer(-1.0), addresses=FULL_OUT)


def test_snapshots_are_served_while_the_first_update_waits(sf_bus):
    """The wait holds no lock the loop needs: an in side (of another topic, so the wait
    goes on) gets its snapshot meanwhile."""
    synced_at: list = []
    producer = sf_bus.service(make_module(
        "producer", main=lambda to_send, config: to_send("state", "counts", {"total": 1}),
        state_models={"out": {"counts": {
            "state_type": "delta_update_out", "required_arguments": {"total": int},
            "optional_creation_arguments": {"wait_after_creation_s": 60.0,
                                            "topic": "prices"}}}}),
        addresses=DELTA_OUT, main_mode=True)
    consumer = sf_bus.service(make_module("consumer", state_models={"in": {"counts": {
        "state_type": "delta_update_in", "optional_arguments": {"total": int},
        "optional_creation_arguments": {
            "topic": "other",
            "on_update": lambda args, to_send, states, config: synced_at.append(
                sf_bus.clock.monotonic())}}}}), addresses=DELTA_IN)
    started = sf_bus.clock.monotonic()
    producer.run_main()
    assert sf_bus.clock.monotonic() - started >= 60.0
    assert synced_at and synced_at[0] < started + 60.0 and consumer.is_synced("counts")
