"""A main-mode service for the harness tests: quotes a list of symbols, then stops."""

from decimal import Decimal

connection_models = {
    "out": {
        "prices": {
            "connection_type": "requester",
            "required_arguments": {"symbol": str},
            "required_return_arguments": {"price": Decimal},
        },
        "report": {
            "connection_type": "publisher",
            "required_arguments": {"symbol": str, "price": Decimal},
        },
    }
}
config_model = {"required": {"symbols": [str]}}


def main(to_send, config):
    total = Decimal(0)
    for symbol in config["symbols"]:
        price = to_send("connection", "prices", {"symbol": symbol})["price"]
        to_send("connection", "report", {"symbol": symbol, "price": price})
        total += price
    return total
