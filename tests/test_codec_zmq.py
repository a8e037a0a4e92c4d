"""Values cross a real replyer/requester pair over tcp on 127.0.0.1 unchanged: type and value."""

from __future__ import annotations

import uuid
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from helpers import (
    ServicePool,
    ask,
    free_port,
    make_module,
    replyer_addresses,
    requester_addresses,
)

UTC = timezone.utc
PLUS_0530 = timezone(timedelta(hours=5, minutes=30))
MINUS_0300 = timezone(timedelta(hours=-3))

VALUES = {
    "decimal": Decimal("1.10"),
    "decimal_exponent": Decimal("-1.5E-12"),
    "decimal_big": Decimal("123456789012345678901234567890.000000001"),
    "datetime_aware_utc": datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
    "datetime_aware_offset": datetime(2030, 6, 1, 23, 59, 59, 1, tzinfo=PLUS_0530),
    "datetime_naive": datetime(2030, 1, 2, 3, 4, 5, 6),
    "date": date(2030, 2, 28),
    "time_naive": time(23, 59, 59, 999999),
    "time_aware": time(8, 30, tzinfo=MINUS_0300),
    "timedelta": timedelta(days=3, seconds=7, microseconds=11),
    "timedelta_negative": timedelta(days=-1, seconds=5),
    "uuid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "order_book": {Decimal("1.0850"): Decimal("2.5"), Decimal("1.0851"): Decimal("0.1")},
    "set": {1, 2, 3},
    "set_of_decimals": {Decimal("0.1"), Decimal("0.2")},
    "frozenset": frozenset({"a", "b"}),
    "tuple": (1, "a", Decimal("2.50"), None),
    "nested_tuple": ((1, 2), (date(2030, 1, 1), frozenset({3}))),
    "empty_containers": [(), set(), frozenset(), {}, []],
    "nested": {"bids": {Decimal("1.08"): Decimal("3")},
               "at": [datetime(2030, 1, 1, tzinfo=UTC), date(2030, 1, 1)],
               (1, 2): {uuid.UUID(int=7): timedelta(0)}},
}


def assert_same(expected: Any, actual: Any, where: str = "value") -> None:
    """Equal, and of the same type at every level (an offset-naive/aware mix-up fails too)."""
    assert type(actual) is type(expected), f"{where}: {type(actual)} != {type(expected)}"
    assert actual == expected, f"{where}: {actual!r} != {expected!r}"
    if isinstance(expected, (datetime, time)):
        assert actual.utcoffset() == expected.utcoffset(), f"{where}: offset differs"
    if isinstance(expected, Decimal):
        assert str(actual) == str(expected), f"{where}: {actual} != {expected} (exponent)"
    elif isinstance(expected, dict):
        by_key = {(type(k), k): v for k, v in actual.items()}
        for key, value in expected.items():
            assert (type(key), key) in by_key, f"{where}: key {key!r} lost its type"
            assert_same(value, by_key[(type(key), key)], f"{where}[{key!r}]")
    elif isinstance(expected, (list, tuple)):
        for index, (left, right) in enumerate(zip(expected, actual, strict=True)):
            assert_same(left, right, f"{where}[{index}]")
    elif isinstance(expected, (set, frozenset)):
        assert {(type(x), x) for x in actual} == {(type(x), x) for x in expected}, where


@pytest.fixture(scope="module")
def echo():
    """A requester to a replyer that sends back what it gets."""
    port = free_port()
    replyer = make_module("codec_echo", connection_models={"in": {"echo": {
        "connection_type": "replyer",
        "required_creation_arguments": {"on_new_request": lambda args, t, s, c: dict(args)},
        "required_arguments": {"value": Any},
        "required_return_arguments": {"value": Any},
    }}})
    requester = make_module("codec_client", connection_models={"out": {"echo": {
        "connection_type": "requester",
        "required_arguments": {"value": Any},
        "required_return_arguments": {"value": Any},
        "optional_creation_arguments": {"timeout_s": 5.0},
    }}})
    with ServicePool() as pool:
        pool.start(replyer, replyer_addresses("echo", port))
        yield pool.start(requester, requester_addresses("echo", port))


@pytest.mark.parametrize("name", sorted(VALUES))
def test_value_round_trips_exactly(echo, name):
    value = VALUES[name]
    assert_same(value, ask(echo, "echo", {"value": value})["value"], name)


def test_all_values_in_one_message(echo):
    assert_same(VALUES, ask(echo, "echo", {"value": VALUES})["value"])


def test_typed_models_check_the_decoded_values():
    """A replyer whose model names the types gets those types (no strings, no floats)."""
    port = free_port()
    seen: list[dict] = []

    def on_new_request(args, to_send, states, config):
        seen.append(args)
        return {"book": {price: size * 2 for price, size in args["book"].items()},
                "at": args["at"] + timedelta(days=1)}

    model = {"required_arguments": {"book": {Decimal: Decimal}, "at": datetime,
                                    "ids": {uuid.UUID}, "pair": (str, date)},
             "required_return_arguments": {"book": {Decimal: Decimal}, "at": datetime}}
    replyer = make_module("typed_replyer", connection_models={"in": {"book": {
        "connection_type": "replyer",
        "required_creation_arguments": {"on_new_request": on_new_request}, **model}}})
    requester = make_module("typed_client", connection_models={"out": {"book": {
        "connection_type": "requester", **model}}})
    args = {"book": {Decimal("1.1"): Decimal("0.5")},
            "at": datetime(2030, 1, 1, 12, tzinfo=PLUS_0530),
            "ids": {uuid.UUID(int=1), uuid.UUID(int=2)}, "pair": ("EURUSD", date(2030, 1, 1))}
    with ServicePool() as pool:
        pool.start(replyer, replyer_addresses("book", port))
        client = pool.start(requester, requester_addresses("book", port))
        reply = ask(client, "book", args)
    assert_same(args, seen[0])
    assert_same({"book": {Decimal("1.1"): Decimal("1.0")},
                 "at": datetime(2030, 1, 2, 12, tzinfo=PLUS_0530)}, reply)
