"""Main mode: publishes `count` ticks, `interval_s` apart (`time.sleep`), each carrying
the wall time and the monotonic time it was sent at."""

import time
from datetime import datetime, timezone

connection_models = {"out": {"ticks": {
    "connection_type": "publisher",
    "required_arguments": {"n": int, "at": datetime, "monotonic": float},
}}}
config_model = {"optional": {"count": int, "interval_s": float}}


def main(to_send, config):
    for number in range(config.get("count", 10)):
        to_send("connection", "ticks", {"n": number, "at": datetime.now(timezone.utc),
                                        "monotonic": time.monotonic()})
        time.sleep(config.get("interval_s", 0.01))
    return time.time()
