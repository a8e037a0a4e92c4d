"""Scale on one memory bus: many independent service pairs, a bus of 1,000 services, and
10,000 harness requests (issue 12's targets)."""

from __future__ import annotations

import time

from _common import PAYLOAD, echo_replyer, ticks_publisher, ticks_subscriber

from service_framework import Service


def _pairs(bus, count: int, handled: list[int]) -> list[Service]:
    """`count` publisher→subscriber pairs, each on addresses of its own."""
    def on_message(args, to_send, states, config):
        handled[0] += 1

    services = []
    for number in range(count):
        endpoint = f"10.0.{number // 250}.{number % 250}:7000"
        services.append(Service(service_module=ticks_subscriber(on_message), transport=bus,
                                console_loglevel="WARNING", addresses={"connections": {
                                    "in": {"ticks": {"subscriber": endpoint}}}}).run_service())
        services.append(Service(service_module=ticks_publisher(), transport=bus,
                                console_loglevel="WARNING", addresses={"connections": {
                                    "out": {"ticks": {"publisher": endpoint}}}}).run_service())
    return services


def pairs_rate(count: int, window_s: float) -> float:
    """Messages handled per second when `count` independent pairs each publish in turn."""
    from service_framework.transport.memory import MemoryBus

    bus, handled = MemoryBus(seed=3), [0]
    services = _pairs(bus, count, handled)
    senders = [service.runtime.to_send for service in services[1::2]]
    per_round = max(1, 500 // count)
    started = time.perf_counter()
    while time.perf_counter() - started < window_s:
        for to_send in senders:
            for _ in range(per_round):
                to_send("connection", "ticks", PAYLOAD)
        bus.run_until_idle()
    elapsed = time.perf_counter() - started
    for service in services:
        service.stop_service()
    return handled[0] / elapsed


def thousand_services() -> tuple[float, bool]:
    """Seconds to start 1,000 services (500 pairs), send one message per pair, stop them;
    and whether every message arrived."""
    from service_framework.transport.memory import MemoryBus

    started = time.perf_counter()
    bus, handled = MemoryBus(seed=4), [0]
    services = _pairs(bus, 500, handled)
    for publisher in services[1::2]:
        publisher.runtime.to_send("connection", "ticks", PAYLOAD)
    bus.run_until_idle()
    for service in services:
        service.stop_service()
    return time.perf_counter() - started, handled[0] == 500


def harness_requests(count: int = 10_000) -> float:
    """Seconds for `count` requests from a harness to a replyer on the memory bus."""
    from service_framework.transport.memory import MemoryBus
    from service_framework_testing import ServiceHarness

    harness = ServiceHarness(echo_replyer(), transport=MemoryBus(seed=5))
    request = harness.request
    request("echo", PAYLOAD)
    started = time.perf_counter()
    for _ in range(count):
        request("echo", PAYLOAD)
    elapsed = time.perf_counter() - started
    harness.close()
    return elapsed
