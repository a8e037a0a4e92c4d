"""A memory bus of 1,000 services starts, delivers and stops (not timed: the rates are in
benchmarks/run.py)."""

from __future__ import annotations

from helpers import make_module

from service_framework import Service
from service_framework.transport.memory import MemoryBus


def test_a_bus_of_1000_services_delivers_every_message():
    bus, handled = MemoryBus(seed=4), []
    subscriber = make_module("scale_subscriber", connection_models={"in": {"ticks": {
        "connection_type": "subscriber",
        "required_creation_arguments": {
            "on_new_message": lambda args, to_send, states, config: handled.append(args["n"])},
        "required_arguments": {"n": int}}}})
    publisher = make_module("scale_publisher", connection_models={"out": {"ticks": {
        "connection_type": "publisher", "required_arguments": {"n": int}}}})
    services = []
    for number in range(500):
        endpoint = f"10.0.{number // 250}.{number % 250}:7000"
        services.append(Service(service_module=subscriber, transport=bus,
                                console_loglevel="WARNING", addresses={"connections": {
                                    "in": {"ticks": {"subscriber": endpoint}}}}).run_service())
        services.append(Service(service_module=publisher, transport=bus,
                                console_loglevel="WARNING", addresses={"connections": {
                                    "out": {"ticks": {"publisher": endpoint}}}}).run_service())
    try:
        for number, sender in enumerate(services[1::2]):
            sender.runtime.to_send("connection", "ticks", {"n": number})
        bus.run_until_idle()
        assert sorted(handled) == list(range(500))  # each pair its own: no message crossed
    finally:
        for service in services:
            service.stop_service()
    assert not bus.open_sockets()


def test_the_ready_set_picks_exactly_what_a_scan_of_every_service_would(sf_bus, monkeypatch):
    # Every pick of a faulty, timer-heavy run is checked against the full scan (`verify`):
    # the seeded choices, and so every run of a seed, are those of the scan.
    from simulation.scenarios import fills_counted_once

    sf_bus.bus.scheduler.verify = True
    monkeypatch.setattr("service_framework.transport.memory.scheduler.SCAN_UP_TO", 0)
    sf_bus.faults.drop(kind="publish", nth=1)
    sf_bus.faults.delay(kind="reply", seconds=0.3, nth=2)
    fills_counted_once(sf_bus, fills=8)
    sf_bus.advance(5.0)
    assert sf_bus.bus.scheduler.verify and len(sf_bus.bus.deliveries) > 16
