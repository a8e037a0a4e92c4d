"""Seed sweeps: how many seeds a second the order book runs as a scenario (issue 10)."""

from __future__ import annotations

from pathlib import Path

from service_framework.transport.memory import MemoryBus
from service_framework_testing.bus import TestBus
from service_framework_testing.simulation import sweep

BOOK = Path(__file__).resolve().parents[1] / "examples" / "order_book"
ADDRESSES = {
    "states": {"out": {"book": {"publisher": "127.0.0.1:45301", "replyer": "127.0.0.1:45302"}},
               "in": {"book": {"subscriber": "127.0.0.1:45301",
                               "requester": "127.0.0.1:45302"}}},
    "connections": {"in": {"book": {"replyer": "127.0.0.1:45303"}}},
}


def order_book(bus: TestBus, deltas: int = 500) -> None:
    """Producer (500 deltas), consumer, and a client asking the consumer for the book."""
    producer = bus.service(BOOK / "producer.py", addresses=ADDRESSES, main_mode=True,
                           config={"count": deltas, "interval_s": 0.0, "hold_s": 0.0})
    consumer = bus.service(BOOK / "consumer.py", addresses=ADDRESSES)
    producer.run_main()
    consumer.request("book", {})


def seeds_per_second(runs: int, *, check_determinism: bool = False) -> tuple[float, str]:
    """(seeds per second, the sweep's one-line summary) at the `stormy` level."""
    bus = TestBus(MemoryBus())
    try:
        result = sweep(bus, order_book, runs=runs, faults="stormy", artifacts=None,
                       shrink=False, check_determinism=check_determinism)
    finally:
        bus.close()
    runs_done = result.runs * (2 if check_determinism else 1)
    return result.runs / result.seconds, result.summary() + (
        f" [{runs_done} runs]" if check_determinism else "")
