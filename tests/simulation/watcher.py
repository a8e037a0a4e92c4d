"""The subscribers of planted bug 4 (`watcher_a.py`, `watcher_b.py`): each acknowledges
every tick to the feed, best effort (a lost ack is covered by the next one)."""

from service_framework import RemoteError, RequestTimeout

config_model = {"required": {"who": str}}


def on_tick(args, to_send, states, config):
    try:
        to_send("connection", "ack", {"who": config["who"], "tick": args["tick"]})
    except (RequestTimeout, RemoteError):
        pass


connection_models = {
    "in": {"ticks": {"connection_type": "subscriber",
                     "required_creation_arguments": {"on_new_message": on_tick},
                     "required_arguments": {"tick": int}}},
    "out": {"ack": {"connection_type": "requester",
                    "optional_creation_arguments": {"timeout_s": 1.0},
                    "required_arguments": {"who": str, "tick": int}}},
}
