"""A replica of an echo replyer: answers with its own name and how often its handler ran.

Config: `name` (the replica's), `dedupe` (replies kept to answer a repeated request id,
0 by default), `hang` (when true the handler is stuck for `HANG_S`, far past any
request's timeout in the tests: a replica that is up but does not answer; the tests
kill it).
"""

import threading

HANG_S = 120.0
_never = threading.Event()  # nothing sets it: the wait is the stuck handler

config_model = {"optional": {"name": str, "dedupe": int, "hang": bool}}
runs = 0


def on_echo(args, to_send, states, config):
    global runs
    runs += 1
    if config.get("hang"):
        _never.wait(HANG_S)
    return {"text": args["text"], "replica": config.get("name", "?"), "runs": runs}


def setup_connections(config):
    return {"echo": {"dedupe": config.get("dedupe", 0)}}


connection_models = {
    "in": {
        "echo": {
            "connection_type": "replyer",
            "required_creation_arguments": {"on_new_request": on_echo},
            "required_arguments": {"text": str},
            "required_return_arguments": {"text": str, "replica": str, "runs": int},
        }
    }
}
