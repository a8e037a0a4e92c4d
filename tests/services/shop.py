"""A small shop service for the harness tests: every kind of connection, and states."""

from datetime import datetime, timezone
from decimal import Decimal

from service_framework import get_logger

log = get_logger()


def on_quote(args, to_send, states, config):
    price = to_send("connection", "prices", {"symbol": args["symbol"]})["price"]
    tax = to_send("connection", "tax", {"amount": price * args["qty"]})["tax"]
    limit = states["limits"].get("max_qty", {}).get(args["symbol"]) if "limits" in states else None
    if limit is not None and args["qty"] > limit:
        raise ValueError(f"qty {args['qty']} over the limit {limit} for {args['symbol']}")
    return {"symbol": args["symbol"], "total": price * args["qty"] + tax,
            "at": datetime.now(timezone.utc)}


def on_fill(args, to_send, states, config):
    position = states["positions"].get("qty", {}).get(args["symbol"], 0) + args["qty"]
    to_send("state", "positions", {"qty": {args["symbol"]: position}})
    to_send("connection", "audit", {"symbol": args["symbol"], "qty": args["qty"]})


def add_tax(amount):
    return {"tax": (amount * Decimal("0.1")).quantize(Decimal("0.01"))}


config_model = {"optional": {"currency": str}}

connection_models = {
    "in": {
        "quote": {
            "connection_type": "replyer",
            "required_creation_arguments": {"on_new_request": on_quote},
            "required_arguments": {"symbol": str, "qty": int},
            "required_return_arguments": {"symbol": str, "total": Decimal, "at": datetime},
        },
        "fills": {
            "connection_type": "subscriber",
            "required_creation_arguments": {"on_new_message": on_fill},
            "required_arguments": {"symbol": str, "qty": int},
        },
    },
    "out": {
        "prices": {
            "connection_type": "requester",
            "required_arguments": {"symbol": str},
            "required_return_arguments": {"price": Decimal},
            "optional_creation_arguments": {"timeout_s": 1.0},
        },
        "tax": {
            "connection_type": "external_target",
            "required_creation_arguments": {"target": add_tax},
            "required_arguments": {"amount": Decimal},
            "required_return_arguments": {"tax": Decimal},
        },
        "audit": {
            "connection_type": "publisher",
            "required_arguments": {"symbol": str, "qty": int},
        },
    },
}

state_models = {
    "out": {
        "positions": {
            "state_type": "delta_update_out",
            "optional_arguments": {"qty": {str: int}},
        },
    },
    "in": {
        "limits": {
            "state_type": "delta_update_in",
            "optional_arguments": {"max_qty": {str: int}},
        },
    },
}
