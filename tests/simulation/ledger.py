"""The ledger of planted bug 1: BUG — it does not remember which fills it applied, so a
duplicated fill message is applied twice (the fix: skip a `fill_id` already seen)."""

POSITION = {"qty": 0, "applied": []}


def init_function(to_send, states, config):
    POSITION.update(qty=0, applied=[])


def on_fill(args, to_send, states, config):
    POSITION["qty"] += args["qty"]
    POSITION["applied"].append(args["fill_id"])


connection_models = {"in": {"fills": {
    "connection_type": "subscriber",
    "required_creation_arguments": {"on_new_message": on_fill},
    "required_arguments": {"fill_id": str, "qty": int},
}}}
