"""The gate of planted bug 3: it accepts an order only within the risk limits — BUG: it
reads the limits without asking whether they are synced, and before the first snapshot
arrives the in-state is `{}`, so any quantity passes (the fix: refuse while
`states.is_synced("limits")` is False)."""

ACCEPTED: list[int] = []
UNLIMITED = 1_000_000


def init_function(to_send, states, config):
    ACCEPTED.clear()


def on_order(args, to_send, states, config):
    if args["qty"] > states["limits"].get("max_qty", UNLIMITED):
        return {"accepted": False}
    ACCEPTED.append(args["qty"])
    return {"accepted": True}


connection_models = {"in": {"order": {
    "connection_type": "replyer",
    "required_creation_arguments": {"on_new_request": on_order},
    "required_arguments": {"qty": int},
    "required_return_arguments": {"accepted": bool},
}}}
state_models = {"in": {"limits": {"state_type": "delta_update_in",
                                  "optional_arguments": {"max_qty": int}}}}
