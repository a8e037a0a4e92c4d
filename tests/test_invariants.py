"""Each built-in invariant of a simulated run catches what it promises to (issue 10, item 3)."""

from pathlib import Path

import pytest

from service_framework import InvariantViolation
from service_framework.events import Event
from service_framework_testing.simulation import sweep
from tests.simulation.scenarios import orders_charged_once

SERVICES = Path(__file__).parent / "services"
BOOK = Path(__file__).parents[1] / "examples" / "order_book"
ADDRESSES = {
    "states": {"out": {"book": {"publisher": "127.0.0.1:45301", "replyer": "127.0.0.1:45302"}},
               "in": {"book": {"subscriber": "127.0.0.1:45301",
                               "requester": "127.0.0.1:45302"}}},
    "connections": {"in": {"book": {"replyer": "127.0.0.1:45303"}}},
}


def test_an_on_update_that_raises_is_a_violation_unless_expected(sf_bus):
    harness = sf_bus.service(SERVICES / "raising_on_update.py")
    harness.feed_state("prices", {"last": 3}, is_snapshot=True)
    assert harness.is_synced("prices")  # the service went on
    with pytest.raises(InvariantViolation, match=r"seed 0, t=0\.000000, service "
                       r"'raising_on_update': state 'prices': on_update raised LookupError"):
        sf_bus.check_errors()
    sf_bus.expect_errors(LookupError)
    sf_bus.check_errors()


def test_a_request_that_never_ended_is_named(sf_bus):
    invariants = sf_bus.invariants
    invariants._budgets["shop"] = {"prices": 1.5}
    invariants._on_event("shop", Event(2.0, "out", "request", "prices", "w1", {}))
    invariants.check_requests(3.0)  # within its timeout and retries: nothing to say
    with pytest.raises(InvariantViolation, match="request 'prices' .*w1.* sent at "
                       "t=2.000000 never ended"):
        invariants.check_requests(4.1)


def test_a_reply_after_the_requests_budget_is_named(sf_bus):
    invariants = sf_bus.invariants
    invariants._budgets["shop"] = {"prices": 1.0}
    invariants._on_event("shop", Event(0.0, "out", "request", "prices", "w2", {}))
    invariants._on_event("shop", Event(3.0, "in", "reply", "prices", "w2", {}))
    assert "ended after 3.000s, beyond its timeout and retries (1s)" in invariants.violations[0]


def test_an_in_state_that_differs_from_its_out_side_after_healing_is_named(sf_bus):
    # Not in main mode: the producer must still serve when the check runs (a main-mode
    # service stops when main returns), so its main is called as a plain function.
    producer = sf_bus.service(BOOK / "producer.py", addresses=ADDRESSES,
                              config={"count": 20, "interval_s": 0.0, "hold_s": 0.0})
    consumer = sf_bus.service(BOOK / "consumer.py", addresses=ADDRESSES)
    producer.service.definition.module.main(producer.runtime.to_send, producer.runtime.config)
    sf_bus.run_until_idle()
    sf_bus.invariants.check_states(sf_bus.harnesses)  # in sync: nothing to say
    consumer.runtime.in_states["book"].value["asks"].clear()  # as a bug in the merge would
    with pytest.raises(InvariantViolation, match="service 'consumer': in-state 'book' .* "
                       "differs from its out side on 'producer'"):
        sf_bus.invariants.check_states(sf_bus.harnesses)


def test_the_bus_may_lose_but_never_invent_or_reorder_on_a_link(sf_bus):
    invariants = sf_bus.invariants
    link = ("a.out", "b.in")
    invariants._sent[link] = [[b"1"], [b"2"], [b"3"]]
    invariants._delivered[link] = [[b"1"], [b"3"]]  # a loss: allowed
    invariants.check_links(set())
    invariants._delivered[link] = [[b"3"], [b"1"]]
    with pytest.raises(InvariantViolation, match="delivery 1 on a.out -> b.in was not sent, "
                       "or came out of order"):
        invariants.check_links(set())
    invariants.check_links({link})  # a duplicate or reorder fault acted: any order
    invariants._delivered[link] = [[b"9"]]
    with pytest.raises(InvariantViolation, match="never sent"):
        invariants.check_links({link})


def test_the_order_book_passes_a_hostile_sweep(sf_bus):
    """The real thing: producer, consumer and client, every invariant, 30 seeds."""

    def order_book(bus):
        producer = bus.service(BOOK / "producer.py", addresses=ADDRESSES, main_mode=True,
                               config={"count": 200, "interval_s": 0.01, "hold_s": 0.0})
        consumer = bus.service(BOOK / "consumer.py", addresses=ADDRESSES)
        producer.run_main()
        consumer.request("book", {})

    result = sweep(sf_bus, order_book, runs=30, faults="hostile", artifacts=None)
    assert result.failure is None, result.report()
    assert result.runs == 30


def test_a_sweep_failure_names_seed_time_service_and_message(sf_bus, tmp_path):
    result = sweep(sf_bus, orders_charged_once, runs=50, faults="stormy", artifacts=tmp_path)
    message = str(result.failure.error)
    assert message.startswith(f"seed {result.failure.seed}, t=")
    assert "service '" in message
    assert "after a delivery" in message or "after the run" in message
