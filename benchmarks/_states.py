"""A late joiner to a large state: from the in side's start to in sync with an out-state of
1M `{Decimal: Decimal}` levels (sent in parts), on the memory bus and over ZeroMQ (the out
side in a process of its own)."""

from __future__ import annotations

import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

from _common import book_consumer, book_producer, free_port

from service_framework import Service

PEERS = Path(__file__).resolve().parent / "_peers.py"
CHUNK = 1000


def fill(to_send, levels: int) -> None:
    """`levels` price levels, sent as deltas of `CHUNK` levels (each one message)."""
    for start in range(0, levels, CHUNK):
        side = "asks" if start % (2 * CHUNK) else "bids"
        to_send("state", "book", {side: {Decimal(n) / 100: Decimal(n % 97 + 1)
                                         for n in range(start, min(levels, start + CHUNK))}})


def _join(consumer: Service, timeout_s: float = 120.0) -> float:
    started = time.perf_counter()
    consumer.run_service()
    state = consumer.runtime.in_states["book"]
    while not state.synced:
        if time.perf_counter() - started > timeout_s:
            raise RuntimeError("the late joiner did not sync")
        time.sleep(0.005)
    return time.perf_counter() - started


def late_joiner_bus(levels: int) -> float:
    """Seconds from the in side's start to in sync, on the memory bus (virtual time, so
    what is measured is the work: packing, checking, decoding, merging)."""
    from service_framework.transport.memory import MemoryBus

    bus = MemoryBus(seed=1)
    addresses = {"publisher": "book:1", "replyer": "book:2"}
    producer = Service(service_module=book_producer(), transport=bus,
                       console_loglevel="WARNING",
                       addresses={"states": {"out": {"book": addresses}}}).run_service()
    fill(producer.runtime.to_send, levels)
    bus.scheduler.run_until_idle()
    consumer = Service(service_module=book_consumer(), transport=bus, console_loglevel="WARNING",
                       addresses={"states": {"in": {"book": {
                           "subscriber": "book:1", "requester": "book:2"}}}})
    started = time.perf_counter()
    consumer.run_service()
    bus.scheduler.run_until_idle()
    took = time.perf_counter() - started
    state = consumer.runtime.in_states["book"]
    assert state.synced and sum(len(side) for side in state.value.values()) == levels
    consumer.stop_service()
    producer.stop_service()
    return took


def late_joiner_zmq(levels: int) -> float:
    publisher, replyer = free_port(), free_port()
    process = subprocess.Popen([sys.executable, str(PEERS), "book-out", str(levels),
                                f"{publisher},{replyer}"], stdout=subprocess.PIPE, text=True)
    try:
        if process.stdout.readline().strip() != "ready":
            raise RuntimeError("the out side did not start")
        consumer = Service(service_module=book_consumer(), console_loglevel="WARNING",
                           addresses={"states": {"in": {"book": {
                               "subscriber": f"127.0.0.1:{publisher}",
                               "requester": f"127.0.0.1:{replyer}"}}}})
        took = _join(consumer)
        state = consumer.runtime.in_states["book"]
        assert sum(len(side) for side in state.value.values()) == levels
        consumer.stop_service()
        return took
    finally:
        process.terminate()
        process.wait(30)
