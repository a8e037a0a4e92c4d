"""Subscribes to `ticks` (topic from config, default "ticks") and, unless `forward` is
false, passes each `{"n"}` on through its `work` requester. Used by
`tests/test_conformance.py`.
"""


def on_new_message(args, to_send, states, config):
    if config.get("forward", True):
        to_send("connection", "work", {"n": args["n"]})


connection_models = {
    "in": {"ticks": {
        "connection_type": "subscriber",
        "required_creation_arguments": {"on_new_message": on_new_message},
        "optional_creation_arguments": {"topic": "ticks"},
        "required_arguments": {"n": int},
    }},
    "out": {"work": {
        "connection_type": "requester",
        "required_arguments": {"n": int},
        "required_return_arguments": {"n": int, "by": str, "calls": int},
        "optional_creation_arguments": {"timeout_s": 2.0, "retries": 2},
    }},
}
config_model = {"optional": {"topic": str, "forward": bool}}


def setup_connections(config):
    return {"ticks": {"topic": config.get("topic", "ticks")}}
