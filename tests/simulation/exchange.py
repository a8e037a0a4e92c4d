"""Planted bug 1 (with ledger.py): the exchange publishes each fill once; the ledger adds
every fill it hears to the position, so a duplicated message counts a fill twice."""

FILLS: list[dict] = []  # what the exchange published, for the test's invariant


def init_function(to_send, states, config):
    FILLS.clear()


def on_trade(args, to_send, states, config):
    fill = {"fill_id": args["fill_id"], "qty": args["qty"]}
    FILLS.append(fill)
    to_send("connection", "fills", fill)
    return {}


connection_models = {
    "in": {"trade": {"connection_type": "replyer",
                     "required_creation_arguments": {"on_new_request": on_trade},
                     "required_arguments": {"fill_id": str, "qty": int}}},
    "out": {"fills": {"connection_type": "publisher",
                      "required_arguments": {"fill_id": str, "qty": int}}},
}
