"""The order-book example, run as its README says: two CLI processes over real ZeroMQ."""

from __future__ import annotations

import signal
import time
import types
from datetime import datetime, timezone

import pytest
from helpers import EXAMPLES, finish, load_module, rewrite_addresses, run_cli, start_cli

from service_framework import RequestTimeout, Service
from service_framework.states.merge import merge_patch

EXAMPLE = EXAMPLES / "order_book"
COUNT, SEED = 300, 5


def expected_book() -> dict:
    fixed = datetime(2030, 1, 1, tzinfo=timezone.utc)
    producer = load_module(EXAMPLE / "producer.py")
    updates = list(producer.book_updates(COUNT, SEED, now=lambda: fixed))
    book = {key: value for key, value in updates[0].items() if key != "is_snapshot"}
    for delta in updates[1:]:
        merge_patch(book, delta)
    return book


def reader_module() -> types.ModuleType:
    module = types.ModuleType("book_reader")
    module.connection_models = {"out": {"book": {
        "connection_type": "requester", "optional_creation_arguments": {"timeout_s": 0.5}}}}
    return module


def test_consumer_replyer_returns_the_producers_book(tmp_path):
    addresses = rewrite_addresses(EXAMPLE / "addresses.json", tmp_path)
    expected = expected_book()
    assert len(expected["asks"]) > 3 and len(expected["bids"]) > 3
    consumer = start_cli("-s", EXAMPLE / "consumer.py", "-a", addresses,
                         "-c", EXAMPLE / "consumer_config.json",
                         "--snapshot_timeout_s", "0.3", "--heartbeat_s", "0.2")
    producer = start_cli("-s", EXAMPLE / "producer.py", "-a", addresses,
                         "-c", EXAMPLE / "producer_config.json", "-m",
                         "--count", str(COUNT), "--seed", str(SEED), "--interval_s", "0.001",
                         "--hold_s", "30", "--heartbeat_s", "0.2")
    reader = Service(service_module=reader_module(), addresses=str(addresses)).run_service()
    try:
        book, deadline = {}, time.monotonic() + 8
        while time.monotonic() < deadline:
            assert consumer.poll() is None and producer.poll() is None, "a service died"
            try:
                book = reader.runtime.to_send("connection", "book", {})
            except RequestTimeout:
                continue  # the consumer is still starting
            if book.get("asks") == expected["asks"] and book.get("bids") == expected["bids"]:
                break
            time.sleep(0.02)
        assert book.get("asks") == expected["asks"] and book.get("bids") == expected["bids"]
        assert isinstance(book["updated_time"], datetime) and book["updated_time"].tzinfo
    finally:
        reader.stop_service()
        consumer_status, _, consumer_log = finish(consumer, send=signal.SIGTERM)
        producer_status, _, producer_log = finish(producer, send=signal.SIGTERM)
    assert "in sync" in consumer_log, consumer_log
    assert (consumer_status, producer_status) == (0, 0), consumer_log + producer_log


@pytest.mark.parametrize(("service", "config", "main_mode"), [
    ("producer", "producer_config.json", ["-m"]),
    ("consumer", "consumer_config.json", []),
])
def test_example_checks_with_its_own_addresses_file(service, config, main_mode):
    result = run_cli("-s", EXAMPLE / f"{service}.py", "-a", EXAMPLE / "addresses.json",
                     "-c", EXAMPLE / config, *main_mode, "--check")
    assert result.returncode == 0, result.stderr
    assert f"service {service}: OK" in result.stdout
