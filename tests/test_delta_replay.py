"""Delta streams with faults through a fake out side: the in-state always converges."""

from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from service_framework.loader import import_service
from service_framework.transport.memory import MemoryBus
from service_framework_testing import replay_delta_stream
from service_framework_testing.bus import TestBus
from service_framework_testing.strategies import delta_streams, fault_plans

CONSUMER = import_service(Path(__file__).parents[1] / "examples" / "order_book" / "consumer.py")
FAST = {"heartbeat_s": 0.2, "snapshot_timeout_s": 0.5}
T0 = datetime(2030, 1, 1, tzinfo=timezone.utc)


def book(**levels):
    return {"asks": {Decimal(k): Decimal(v) for k, v in levels.items()}, "bids": {},
            "updated_time": T0}


STREAM = [
    {**book(**{"101": "1", "102": "2"}), "is_snapshot": True},
    {"asks": {Decimal("103"): Decimal("3")}},
    {"asks": {Decimal("101"): None}},
    {"bids": {Decimal("99"): Decimal("5")}},
    {"asks": {Decimal("102"): Decimal("7")},
     "updated_time": datetime(2030, 1, 2, tzinfo=timezone.utc)},
    {"bids": {Decimal("99"): None, Decimal("98"): Decimal("1")}},
]


@pytest.fixture(params=["memory", "zmq"])
def consumer(request, sf_service):
    return sf_service(CONSUMER, config=FAST, transport=request.param)


@pytest.mark.parametrize("faults", [
    {},
    {"drop": {2}},  # a gap in the middle
    {"drop": {5}},  # the last update lost: only a heartbeat reveals it
    {"duplicate": {1, 3}},
    {"reorder": {2}},
    {"restart_at": {3}},
    {"drop": {1}, "duplicate": {2}, "reorder": {3}, "restart_at": {4}},
], ids=["clean", "gap", "lost-tail", "duplicates", "reorder", "restart", "everything"])
def test_the_in_state_converges_under_each_fault(consumer, faults):
    expected = replay_delta_stream(consumer, "book", STREAM, **faults)
    assert consumer.states["book"] == expected
    assert consumer.is_synced("book")
    assert consumer.request("book", {}) == expected


def test_without_faults_no_snapshot_is_requested_after_the_first(sf_service):
    consumer = sf_service(CONSUMER, config=FAST)
    replay_delta_stream(consumer, "book", STREAM)
    assert consumer.runtime.in_states["book"].snapshot_requests == 1


def test_a_state_source_shows_not_in_sync_while_the_out_side_is_down(sf_service, sf_bus):
    consumer = sf_service(CONSUMER, config=FAST)
    source = consumer.state_source("book")
    source.update(book(**{"1": "1"}), is_snapshot=True)
    assert consumer.is_synced("book")
    source.close()
    sf_bus.advance(2.0)
    assert not consumer.is_synced("book")
    assert consumer.request("book", {}) == book(**{"1": "1"})  # the last good value


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(stream=delta_streams(CONSUMER.state_models["in"]["book"], max_size=20),
       plan=fault_plans(max_index=20))
def test_random_delta_streams_with_random_faults_converge(stream, plan):
    bus = TestBus(MemoryBus(seed=len(stream)))
    try:
        consumer = bus.service(CONSUMER, config=FAST)
        expected = replay_delta_stream(consumer, "book", stream, **plan.as_kwargs())
        assert consumer.states["book"] == expected
        assert consumer.is_synced("book")
    finally:
        bus.close()
