"""Planted bug 2 (with checkout.py): checkout asks payments to charge an order through a
requester that retries; payments charges on every request it gets — BUG: it is not
idempotent, so a retry after a lost or late reply charges the order twice (the fix: answer
a repeated order id from what was charged)."""

CHARGES: list[str] = []


def init_function(to_send, states, config):
    CHARGES.clear()


def on_charge(args, to_send, states, config):
    CHARGES.append(args["order_id"])
    return {"charged": args["amount"]}


connection_models = {"in": {"charge": {
    "connection_type": "replyer",
    "required_creation_arguments": {"on_new_request": on_charge},
    "required_arguments": {"order_id": str, "amount": int},
    "required_return_arguments": {"charged": int},
}}}
