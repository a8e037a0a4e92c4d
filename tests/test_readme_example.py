"""The example test of the README, kept here so it stays true."""
from decimal import Decimal
from pathlib import Path

import pytest

from service_framework import RemoteError


@pytest.fixture
def shop(sf_service):
    shop = sf_service(Path(__file__).parent / "services" / "shop.py")  # memory bus by default
    shop.stub("prices", returns={"price": Decimal("2.50")})   # what the out requester answers
    return shop


def test_a_quote_adds_tax(shop):
    reply = shop.request("quote", {"symbol": "ABC", "qty": 4})
    assert reply["total"] == Decimal("11.00")
    shop.sent.assert_sent("connection", "prices", {"symbol": "ABC"})


def test_a_fill_moves_the_position_and_is_audited(shop):
    shop.publish("fills", {"symbol": "ABC", "qty": 3})
    assert shop.states["positions"] == {"qty": {"ABC": 3}}
    shop.sent.assert_sent("connection", "audit", {"symbol": "ABC", "qty": 3})


def test_a_bad_request_gets_an_error_reply(shop):
    with pytest.raises(RemoteError) as error:
        shop.request("quote", {"symbol": "ABC", "qty": "four"})
    assert error.value.remote_type == "ArgumentError"


def test_limits_from_the_risk_service_are_applied(shop):
    shop.feed_state("limits", {"max_qty": {"ABC": 10}}, is_snapshot=True)
    assert shop.is_synced("limits")
    with pytest.raises(RemoteError, match="over the limit"):
        shop.request("quote", {"symbol": "ABC", "qty": 11})
