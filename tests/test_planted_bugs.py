"""Seed sweeps find bugs that only some fault and schedule reveal (issue 10, item 9).

Each scenario runs services from `tests/simulation/` with a planted bug and states the
invariant the bug breaks. A sweep at a fault level finds it within 200 seeds and shrinks
the failing run to at most two faults; both are asserted.
"""

from pathlib import Path

import pytest

from service_framework import InvariantViolation, RemoteError, RequestTimeout
from service_framework_testing.simulation import sweep

SIM = Path(__file__).parent / "simulation"
CAUGHT = (RemoteError, RequestTimeout)


def module(harness):
    return harness.service.definition.module


def fills_counted_once(bus):
    exchange = bus.service(SIM / "exchange.py", addresses={"connections": {
        "in": {"trade": {"replyer": "127.0.0.1:7101"}},
        "out": {"fills": {"publisher": "127.0.0.1:7102"}}}})
    ledger = bus.service(SIM / "ledger.py", addresses={"connections": {
        "in": {"fills": {"subscriber": ["127.0.0.1:7102"]}}}})

    @bus.invariant
    def no_fill_applied_twice(_):
        applied = module(ledger).POSITION["applied"]
        return len(applied) == len(set(applied))

    for number in range(8):
        try:
            exchange.request("trade", {"fill_id": f"f{number}", "qty": bus.random.randint(1, 5)})
        except CAUGHT:
            pass


def orders_charged_once(bus):
    checkout = bus.service(SIM / "checkout.py", addresses={"connections": {
        "in": {"order": {"replyer": "127.0.0.1:7201"}},
        "out": {"payments": {"requester": ["127.0.0.1:7202"]}}}})
    payments = bus.service(SIM / "payments.py", addresses={"connections": {
        "in": {"charge": {"replyer": "127.0.0.1:7202"}}}})

    @bus.invariant
    def no_order_charged_twice(_):
        charges = module(payments).CHARGES
        return len(charges) == len(set(charges))

    for number in range(6):
        try:
            checkout.request("order", {"order_id": f"o{number}", "amount": 10})
        except CAUGHT:
            pass


def orders_within_limits(bus):
    gate = bus.service(SIM / "gate.py", addresses={
        "connections": {"in": {"order": {"replyer": "127.0.0.1:7301"}}},
        "states": {"in": {"limits": {"subscriber": ["127.0.0.1:7302"],
                                     "requester": ["127.0.0.1:7303"]}}}})
    bus.service(SIM / "risk.py", addresses={"states": {"out": {"limits": {
        "publisher": "127.0.0.1:7302", "replyer": "127.0.0.1:7303"}}}})

    @bus.invariant
    def nothing_accepted_over_the_limit(_):
        return all(qty <= 10 for qty in module(gate).ACCEPTED)

    for qty in (5, 50, 8, 20):
        try:
            gate.request("order", {"qty": qty})
        except CAUGHT:
            pass


@pytest.mark.parametrize("scenario, level", [
    (fills_counted_once, "stormy"),
    (orders_charged_once, "stormy"),
    (orders_within_limits, "stormy"),
])
def test_a_sweep_finds_the_planted_bug_and_shrinks_it(sf_bus, tmp_path, scenario, level):
    result = sweep(sf_bus, scenario, runs=200, faults=level, name=scenario.__name__,
                   artifacts=tmp_path)
    assert result.failure is not None, result.summary()
    assert isinstance(result.failure.error, InvariantViolation), result.report()
    shrunk = result.shrunk
    assert shrunk is not None and 1 <= len(shrunk.faults) <= 2, result.report()
    print(result.report())


def ticks_keep_their_pace(bus):
    feed = bus.service(SIM / "feed.py", main_mode=True, config={"subscribers": ["a", "b"]},
                       addresses={"connections": {
                           "in": {"ack": {"replyer": "127.0.0.1:7401"}},
                           "out": {"ticks": {"publisher": "127.0.0.1:7402"}}}})
    for who in "ab":
        bus.service(SIM / f"watcher_{who}.py", config={"who": who}, addresses={"connections": {
            "in": {"ticks": {"subscriber": ["127.0.0.1:7402"]}},
            "out": {"ack": {"requester": ["127.0.0.1:7401"]}}}})

    @bus.invariant
    def the_healthy_subscriber_gets_ticks_at_the_pace(_):
        published = module(feed).PUBLISHED
        return all(later - earlier <= 0.5
                   for earlier, later in zip(published, published[1:], strict=False))

    feed.run_main()


def test_a_hostile_sweep_finds_a_healthy_subscriber_starving_behind_a_stalled_one(
        sf_bus, tmp_path):
    result = sweep(sf_bus, ticks_keep_their_pace, runs=200, faults="hostile",
                   name="ticks_keep_their_pace", artifacts=tmp_path)
    assert result.failure is not None, result.summary()
    assert isinstance(result.failure.error, InvariantViolation), result.report()
    shrunk = result.shrunk
    assert shrunk is not None and 1 <= len(shrunk.faults) <= 2, result.report()
    assert any(fault.action in ("stall", "crash") for fault in shrunk.faults), result.report()
