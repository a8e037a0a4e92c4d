"""Planted bug 4 (with watcher.py): the feed publishes a tick every 0.1 s to subscribers
that acknowledge each tick — BUG: before each tick it waits until *every* subscriber has
acknowledged the last one, so one stalled subscriber stops the ticks for the healthy ones
too (the fix: publish at the pace, and let a slow subscriber lose ticks, as a PUB does)."""

import time

ACKED: dict[str, int] = {}
PUBLISHED: list[float] = []  # when each tick went out (the virtual clock)
TICKS, PACE_S, PATIENCE_S = 20, 0.1, 10.0

config_model = {"required": {"subscribers": [str]}}


def init_function(to_send, states, config):
    ACKED.clear()
    PUBLISHED.clear()


def on_ack(args, to_send, states, config):
    ACKED[args["who"]] = max(ACKED.get(args["who"], -1), args["tick"])
    return {}


def main(to_send, config):
    for tick in range(TICKS):
        deadline = time.monotonic() + PATIENCE_S
        while (tick and min(ACKED.get(who, -1) for who in config["subscribers"]) < tick - 1
               and time.monotonic() < deadline):
            time.sleep(0.01)  # BUG: the healthy subscriber waits for the stalled one
        PUBLISHED.append(time.monotonic())
        to_send("connection", "ticks", {"tick": tick})
        time.sleep(PACE_S)


connection_models = {
    "in": {"ack": {"connection_type": "replyer",
                   "required_creation_arguments": {"on_new_request": on_ack},
                   "required_arguments": {"who": str, "tick": int}}},
    "out": {"ticks": {"connection_type": "publisher",
                      "required_arguments": {"tick": int}}},
}
