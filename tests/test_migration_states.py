"""Issue 15, items 3-5 on the memory bus (the CLI scenarios are in test_legacy_012.py)."""

import logging
from pathlib import Path

from service_framework.addresses import socket_needs
from service_framework.loader import load_service

SERVICES = Path(__file__).parent / "services"
FULL_OUT = {"states": {"out": {"num_state": {"publisher": "127.0.0.1:7601"}}}}
FULL_IN = {"states": {"in": {"num_state": {"subscriber": ["127.0.0.1:7601"]}}}}


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
