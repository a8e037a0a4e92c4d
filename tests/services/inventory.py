"""Seats, reserved then committed. `SEATS` is what a real inventory keeps in its database,
so it survives a restart (`persistent_globals`); `SERVED` counts requests since the process
started, so a restart begins it again."""

persistent_globals = ("SEATS",)

SEATS = {"reserved": [], "committed": []}
SERVED = {"count": 0}


def on_reserve(args, to_send, states, config):
    SERVED["count"] += 1
    SEATS["reserved"].append(args["seat"])
    return {}


def on_commit(args, to_send, states, config):
    SERVED["count"] += 1
    SEATS["committed"].append(args["seat"])
    return {}


connection_models = {"in": {
    name: {"connection_type": "replyer", "required_creation_arguments": {"on_new_request": handler},
           "required_arguments": {"seat": str}}
    for name, handler in (("reserve", on_reserve), ("commit", on_commit))}}
