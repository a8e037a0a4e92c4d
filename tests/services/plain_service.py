"""A replyer and a subscriber with no signal handlers (idle CPU, default stop on signals)."""


def on_new_request(args, to_send, states, config):
    return {"pong": args["ping"]}


def on_new_message(args, to_send, states, config):
    pass


connection_models = {"in": {
    "ping": {
        "connection_type": "replyer",
        "required_creation_arguments": {"on_new_request": on_new_request},
        "required_arguments": {"ping": int},
        "required_return_arguments": {"pong": int},
    },
    "news": {
        "connection_type": "subscriber",
        "required_creation_arguments": {"on_new_message": on_new_message},
        "required_arguments": {"text": str},
    },
}}
