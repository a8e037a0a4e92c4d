"""Converter client (main mode): asks `convert` once and prints the answer."""

from datetime import datetime
from decimal import Decimal

connection_models = {
    "out": {
        "convert": {
            "connection_type": "requester",
            "required_arguments": {"amount": Decimal, "currency_from": str, "currency_to": str},
            "required_return_arguments": {"amount": Decimal, "currency": str, "rate": Decimal,
                                          "fee": Decimal, "as_of": datetime},
            "optional_creation_arguments": {"timeout_s": 2.0, "retries": 2},
        }
    }
}
config_model = {"optional": {"amount": Decimal, "currency_from": str, "currency_to": str}}


def main(to_send, config):
    request = {"amount": config.get("amount", Decimal("100")),
               "currency_from": config.get("currency_from", "EUR"),
               "currency_to": config.get("currency_to", "USD")}
    answer = to_send("connection", "convert", request)
    print(f"{request['amount']} {request['currency_from']} = {answer['amount']} "
          f"{answer['currency']} (rate {answer['rate']}, fee {answer['fee']}, "
          f"as of {answer['as_of'].isoformat()})", flush=True)
