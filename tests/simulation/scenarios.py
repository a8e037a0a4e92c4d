"""Scenarios for seed sweeps over the services with planted bugs in this folder.

Each drives services on a `TestBus`, states with `bus.invariant` what the planted bug
breaks, and draws its workload from `bus.random`.
"""

from pathlib import Path

from service_framework import RemoteError, RequestTimeout

SIM = Path(__file__).parent
CAUGHT = (RemoteError, RequestTimeout)


def module(harness):
    return harness.service.definition.module


def fills_counted_once(bus, fills=8):
    exchange = bus.service(SIM / "exchange.py", addresses={"connections": {
        "in": {"trade": {"replyer": "127.0.0.1:7101"}},
        "out": {"fills": {"publisher": "127.0.0.1:7102"}}}})
    ledger = bus.service(SIM / "ledger.py", addresses={"connections": {
        "in": {"fills": {"subscriber": ["127.0.0.1:7102"]}}}})

    @bus.invariant
    def no_fill_applied_twice(_):
        applied = module(ledger).POSITION["applied"]
        return len(applied) == len(set(applied))

    for number in range(fills):
        try:
            exchange.request("trade", {"fill_id": f"f{number}", "qty": bus.random.randint(1, 5)})
        except CAUGHT:
            pass
    return exchange, ledger


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
