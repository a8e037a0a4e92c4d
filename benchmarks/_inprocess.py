"""Measurements in this process: (c) the memory bus end to end, (d) delta updates."""

from __future__ import annotations

import itertools
import time

from _common import (
    PAYLOAD,
    book_consumer,
    book_deltas,
    book_producer,
    echo_replyer,
    rate,
    ticks_publisher,
    ticks_subscriber,
)

from service_framework import Service
from service_framework.wire.envelope import encode_request


# -- (c) memory bus and (d) deltas -----------------------------------------------------------
def memory_bus(window_s: float, rounds: int) -> dict[str, list[float]]:
    from service_framework.transport.memory import MemoryBus
    from service_framework_testing import ServiceHarness

    bus = MemoryBus(seed=1)
    handled = [0]

    def on_message(args, to_send, states, config):
        handled[0] += 1

    subscriber = Service(service_module=ticks_subscriber(on_message), transport=bus,
                         console_loglevel="WARNING",
                         addresses={"connections": {"in": {"ticks": {
                             "subscriber": "127.0.0.1:7001"}}}}).run_service()
    publisher = Service(service_module=ticks_publisher(), transport=bus,
                        console_loglevel="WARNING",
                        addresses={"connections": {"out": {"ticks": {
                            "publisher": "127.0.0.1:7001"}}}}).run_service()
    to_send = publisher.runtime.to_send

    def publish_batch() -> None:
        for _ in range(500):
            to_send("connection", "ticks", PAYLOAD)
        bus.run_until_idle()

    results: dict[str, list[float]] = {"publish": [], "request": [], "floor": []}
    harness = ServiceHarness(echo_replyer(), transport=bus)
    request = harness.request

    def one_request() -> None:
        request("echo", PAYLOAD)

    # What any runtime pays per message before moving it: encode, decode, validate twice.
    from service_framework.wire.envelope import decode_request

    check = subscriber.runtime.in_connections["ticks"].spec.args.check

    def codec_and_validation() -> None:
        check(decode_request(encode_request("w", check(PAYLOAD), max_bytes=1 << 20),
                             max_bytes=1 << 20).args)

    rate(publish_batch, 0.1, batch=1)
    rate(one_request, 0.1)
    for _ in range(rounds):
        before, started = handled[0], time.perf_counter()
        rate(publish_batch, window_s, batch=1)
        results["publish"].append((handled[0] - before) / (time.perf_counter() - started))
        results["request"].append(rate(one_request, window_s))
        results["floor"].append(rate(codec_and_validation, window_s / 2, batch=500))
    harness.close()
    publisher.stop_service()
    subscriber.stop_service()
    return results


def deltas(window_s: float, rounds: int) -> dict[str, list[float]]:
    from service_framework.states import protocol
    from service_framework.states.sync import InStateSync
    from service_framework.transport.memory import MemoryBus

    updates = book_deltas(10_000)
    bus = MemoryBus(seed=2)
    addresses = {"states": {"out": {"book": {"publisher": "127.0.0.1:7101",
                                             "replyer": "127.0.0.1:7102"}}}}
    producer = Service(service_module=book_producer(), transport=bus, addresses=addresses,
                       console_loglevel="WARNING").run_service()
    consumer = Service(service_module=book_consumer(), transport=bus,
                       addresses={"states": {"in": {"book": {
                           "subscriber": "127.0.0.1:7101", "requester": "127.0.0.1:7102"}}}},
                       console_loglevel="WARNING").run_service()
    bus.run_until_idle()
    in_state = consumer.runtime.in_states["book"]
    to_send = producer.runtime.to_send
    cursor = itertools.cycle(updates)

    def batch() -> None:
        for _ in range(1000):
            to_send("state", "book", next(cursor))
        bus.run_until_idle()

    # The in side alone: decode, validate as a partial value, apply (no transport).
    bodies = [protocol.encode_update("e", n + 1, False, delta) for n, delta in enumerate(updates)]
    check = in_state.spec.value.check
    decode = protocol.decode_message

    def in_side() -> int:
        sync = InStateSync()
        sync.on_snapshot(protocol.Snapshot(None, "e", 0, {}))
        for body in bodies:
            message = decode(body)
            check(message.args, partial=True)
            sync.feed(message)
        return len(bodies)

    results: dict[str, list[float]] = {"bus": [], "in_side": []}
    rate(batch, 0.1, batch=1)
    for _ in range(rounds):
        before, started = in_state.updates_applied, time.perf_counter()
        rate(batch, window_s, batch=1)
        results["bus"].append((in_state.updates_applied - before)
                              / (time.perf_counter() - started))
        started, applied = time.perf_counter(), 0
        while time.perf_counter() - started < window_s:
            applied += in_side()
        results["in_side"].append(applied / (time.perf_counter() - started))
    synced = in_state.synced and in_state.value == producer.runtime.out_states["book"].value
    results["synced"] = [1.0 if synced else 0.0]
    consumer.stop_service()
    producer.stop_service()
    return results
