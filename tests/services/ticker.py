"""Main mode: publishes `{gen, n}` ticks every `interval_s` until a signal stops it.

The first tick waits for a subscriber (`min_subscribers`), so none is lost to the slow
joiner; `gen` tells one run of the publisher from the next.
"""

import time

connection_models = {"out": {"ticks": {
    "connection_type": "publisher",
    "required_arguments": {"gen": str, "n": int},
    "optional_creation_arguments": {"min_subscribers": 1, "wait_for_subscribers_s": 20.0},
}}}
config_model = {"required": {"gen": str}, "optional": {"interval_s": float}}


def main(to_send, config):
    n = 0
    while True:
        to_send("connection", "ticks", {"gen": config["gen"], "n": n})
        n += 1
        time.sleep(config.get("interval_s", 0.01))
