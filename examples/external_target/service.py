"""Currency converter: a replyer `convert` that gets its rate from an external_target.

The `rates` out connection is an `external_target` whose `target` is an import path to a
function of the sibling module `rates.py`: `to_send('connection', 'rates', {...})` calls
it in-process and validates the dict it returns, like the reply of a remote service.

From the repository root (or from anywhere, with the paths adjusted), in two terminals:

    service_framework -s examples/external_target/service.py \
        -a examples/external_target/addresses.json -c examples/external_target/service_config.json
    service_framework -s examples/external_target/client.py \
        -a examples/external_target/addresses.json -c examples/external_target/client_config.json -m
"""

from datetime import datetime
from decimal import Decimal

from service_framework import get_logger

log = get_logger()


def on_new_request(args, to_send, states, config):
    answer = to_send("connection", "rates", {"base": args["currency_from"],
                                             "quote": args["currency_to"]})
    gross = args["amount"] * answer["rate"]
    fee = (gross * config.get("fee", Decimal(0))).quantize(Decimal("0.01"))
    log.info("converting %s %s at %s", args["amount"], args["currency_from"], answer["rate"])
    return {"amount": (gross - fee).quantize(Decimal("0.01")), "currency": args["currency_to"],
            "rate": answer["rate"], "fee": fee, "as_of": answer["as_of"]}


config_model = {"optional": {"fee": Decimal}}

connection_models = {
    "in": {
        "convert": {
            "connection_type": "replyer",
            "required_creation_arguments": {"on_new_request": on_new_request},
            "required_arguments": {"amount": Decimal, "currency_from": str, "currency_to": str},
            "required_return_arguments": {"amount": Decimal, "currency": str, "rate": Decimal,
                                          "fee": Decimal, "as_of": datetime},
        }
    },
    "out": {
        "rates": {
            "connection_type": "external_target",
            "required_creation_arguments": {"target": "rates:quote"},
            "required_arguments": {"base": str, "quote": str},
            "required_return_arguments": {"rate": Decimal, "as_of": datetime},
        }
    },
}
