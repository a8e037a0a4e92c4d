"""The Hypothesis strategies give what they promise, for the models of real services."""

from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings

from service_framework.loader import import_service
from service_framework.wire import codec
from service_framework.wire.validation import ArgsChecker
from service_framework_testing.strategies import (
    arguments,
    delta_streams,
    fault_plans,
    invalid_arguments,
)

EXAMPLES = Path(__file__).parents[1] / "examples"
BOOK = import_service(EXAMPLES / "order_book" / "consumer.py").state_models["in"]["book"]
ECHO = import_service(EXAMPLES / "echo" / "replyer.py").connection_models["in"]["echo"]
MODELS = {"book": BOOK, "echo": ECHO}


def checker(model):
    return ArgsChecker("model", model.get("required_arguments"), model.get("optional_arguments"))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_arguments_are_accepted_by_the_model_and_cross_the_wire(name):
    model = MODELS[name]

    @settings(max_examples=50, deadline=None)
    @given(arguments(model))
    def check(args):
        checker(model).check(args)
        assert codec.unpack(codec.pack(args)) == args

    check()


@pytest.mark.parametrize("name", sorted(MODELS))
def test_invalid_arguments_are_rejected_by_the_model(name):
    model = MODELS[name]

    @settings(max_examples=50, deadline=None)
    @given(invalid_arguments(model))
    def check(args):
        with pytest.raises(ValueError):
            checker(model).check(args)

    check()


@settings(max_examples=50, deadline=None)
@given(delta_streams(BOOK))
def test_a_delta_stream_starts_with_a_full_value_and_continues_with_partial_ones(stream):
    first, *rest = stream
    assert first.pop("is_snapshot") is True
    checker(BOOK).check(first)
    for delta in rest:
        checker(BOOK).check(delta, partial=True)


@given(fault_plans(max_index=10))
def test_fault_plans_stay_within_the_stream(plan):
    for positions in plan.as_kwargs().values():
        assert all(0 <= index <= 10 for index in positions)
    assert 0 not in plan.restart_at



TYPED = {"required_arguments": {"at": datetime, "day": date, "price": Decimal, "n": int,
                                "tag": str}}


def test_invalid_arguments_still_cross_the_codec():
    """Invalid arguments are refused by the service's validation, never by the local codec:
    `object()` or `1j` would fail in the test's own `pack` (issue 10, item 8)."""

    @settings(max_examples=300, deadline=None)
    @given(invalid_arguments(TYPED))
    def check(args):
        assert codec.unpack(codec.pack(args)) == args
        with pytest.raises(ValueError):
            checker(TYPED).check(args)

    check()


def test_strategies_draw_datetimes_while_a_service_runs_on_the_bus(sf_bus):
    """Once a service runs on the bus, freezegun swaps `datetime.datetime`; the strategies
    still draw datetimes (it failed with "function missing required argument 'year'")."""
    sf_bus.service(EXAMPLES / "echo" / "replyer.py")

    @settings(max_examples=30, database=None)
    @given(arguments(TYPED), delta_streams({"optional_arguments": {"at": {str: datetime}}}))
    def check(args, stream):
        assert isinstance(args["at"], datetime) and isinstance(args["day"], date)
        checker(TYPED).check(args)

    check()
