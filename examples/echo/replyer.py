"""Echo replyer: answers each request with what it was sent, and counts requests."""

from datetime import datetime
from decimal import Decimal

from service_framework import get_logger

log = get_logger()
served = {"count": 0}


def on_new_request(args, to_send, states, config):
    served["count"] += 1
    log.debug("echoing %r", args["text"])
    reply = {"text": config["prefix"] + args["text"], "count": served["count"]}
    if "amount" in args:
        reply["amount"] = args["amount"]
    if "at" in args:
        reply["at"] = args["at"]
    return reply


config_model = {"required": {}, "optional": {"prefix": str}}


def setup_config(config):
    return {"prefix": config.get("prefix", "")}


connection_models = {
    "in": {
        "echo": {
            "connection_type": "replyer",
            "required_creation_arguments": {"on_new_request": on_new_request},
            "required_arguments": {"text": str},
            "optional_arguments": {"amount": Decimal, "at": datetime},
            "required_return_arguments": {"text": str, "count": int},
            "optional_return_arguments": {"amount": Decimal, "at": datetime},
        }
    }
}
