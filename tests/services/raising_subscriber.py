"""A subscriber whose handler raises: the loop logs it and goes on; a test must hear of it."""


def on_tick(args, to_send, states, config):
    return args["n"] / 0


connection_models = {"in": {"ticks": {
    "connection_type": "subscriber",
    "required_creation_arguments": {"on_new_message": on_tick},
    "required_arguments": {"n": int},
}}}
