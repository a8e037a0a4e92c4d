"""The harness words on one service. Green on the memory bus and on real ZMQ alike:
`test_harness_runs_on_both_transports` runs this file with `--sf-transport=both`."""

from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest

from service_framework import ArgumentError, RemoteError
from service_framework_testing import Sent

SERVICES = Path(__file__).parent / "services"
SHOP = SERVICES / "shop.py"
BATCH = SERVICES / "batch.py"


@pytest.fixture
def shop(sf_service):
    harness = sf_service(SHOP)
    harness.stub("prices", returns={"price": Decimal("2.50")})
    return harness


def test_request_runs_the_handler_and_returns_its_reply(shop):
    reply = shop.request("quote", {"symbol": "ABC", "qty": 4})
    assert reply["symbol"] == "ABC"
    assert reply["total"] == Decimal("11.00")  # 10.00 + 10% tax from the external target
    assert isinstance(reply["at"], datetime)
    shop.sent.assert_sent("connection", "prices", {"symbol": "ABC"})
    assert shop.sent.to("tax")[0].reply == {"tax": Decimal("1.00")}


def test_a_request_with_a_wrong_type_gets_an_error_reply_naming_the_key(shop):
    with pytest.raises(RemoteError) as error:
        shop.request("quote", {"symbol": "ABC", "qty": "four"})
    assert error.value.remote_type == "ArgumentError"
    assert "qty" in error.value.remote_message
    assert shop.request("quote", {"symbol": "ABC", "qty": 1})["total"] == Decimal("2.75")


def test_publish_runs_the_subscriber_handler(shop):
    shop.publish("fills", {"symbol": "ABC", "qty": 3})
    shop.publish("fills", {"symbol": "ABC", "qty": 2})
    shop.sent.assert_sent("connection", "audit", {"symbol": "ABC", "qty": 2})
    assert shop.states["positions"] == {"qty": {"ABC": 5}}
    assert [entry.output_name for entry in shop.sent] == ["positions", "audit"] * 2


def test_a_bad_message_is_dropped_and_the_next_one_handled(shop):
    shop.publish("fills", {"symbol": "ABC"})
    shop.publish("fills", {"symbol": "ABC", "qty": 1})
    assert shop.states["positions"] == {"qty": {"ABC": 1}}


def test_stub_side_effect_sees_the_args(shop):
    shop.stub("prices", side_effect=lambda args: {"price": Decimal(len(args["symbol"]))})
    assert shop.request("quote", {"symbol": "ABCD", "qty": 1})["total"] == Decimal("4.40")


def test_stub_raising_reaches_the_requester_as_an_error_reply(shop):
    shop.stub("prices", raises=RemoteError("KeyError", "no such symbol"))
    with pytest.raises(RemoteError) as error:
        shop.request("quote", {"symbol": "ZZZ", "qty": 1})
    assert error.value.remote_type == "RemoteError"
    assert "no such symbol" in error.value.remote_message


def test_a_stubbed_answer_is_validated_like_a_real_reply(shop):
    shop.stub("prices", returns={"price": "cheap"})
    with pytest.raises(RemoteError) as error:
        shop.request("quote", {"symbol": "ABC", "qty": 1})
    assert error.value.remote_type == "ArgumentError"
    assert "price" in error.value.remote_message


def test_in_state_fed_by_its_out_side_is_seen_by_handlers(shop):
    shop.feed_state("limits", {"max_qty": {"ABC": 10}}, is_snapshot=True)
    assert shop.is_synced("limits")
    assert shop.states["limits"] == {"max_qty": {"ABC": 10}}
    with pytest.raises(RemoteError, match="over the limit"):
        shop.request("quote", {"symbol": "ABC", "qty": 11})
    shop.feed_state("limits", {"max_qty": {"ABC": None, "XYZ": 1}})
    assert shop.states["limits"] == {"max_qty": {"XYZ": 1}}
    assert shop.request("quote", {"symbol": "ABC", "qty": 11})["symbol"] == "ABC"


def test_states_are_read_only(shop):
    with pytest.raises(TypeError):
        shop.states["positions"] = {}


def test_main_mode_runs_main_to_completion(sf_service):
    batch = sf_service(BATCH, config={"symbols": ["A", "B"]}, main_mode=True)
    batch.stub("prices", side_effect=lambda args: {"price": Decimal(ord(args["symbol"]))})
    assert batch.run_main() == Decimal(65 + 66)
    assert batch.sent[1] == Sent("connection", "report", {"symbol": "A", "price": Decimal(65)})
    batch.sent.assert_not_sent("connection", "report", {"symbol": "C", "price": Decimal(67)})


def test_to_send_to_an_unknown_output_is_an_argument_error(shop):
    with pytest.raises(ArgumentError, match="not an out connection"):
        shop.runtime.to_send("connection", "nowhere", {})


def test_naming_a_state_or_connection_the_service_lacks_is_an_argument_error(shop):
    # One type for one mistake, whichever harness word made it.
    with pytest.raises(ArgumentError, match="no in-state 'nope'"):
        shop.state_source("nope")
    with pytest.raises(ArgumentError, match="'nope'"):
        shop.feed_state("nope", {})
    with pytest.raises(ArgumentError, match="'nope'"):
        shop.request("nope", {})


def test_assert_sent_failure_shows_a_readable_diff(shop):
    shop.publish("fills", {"symbol": "ABC", "qty": 3})
    with pytest.raises(AssertionError) as failure:
        shop.sent.assert_sent("connection", "audit", {"symbol": "ABC", "qty": 4})
    message = str(failure.value)
    assert "~ 'qty': expected 4, got 3" in message
    assert "[1] connection 'audit'" in message
