"""Main mode: once `subscribers` have subscribed to `ticks`, publishes `count` ticks
`interval_s` apart on the `ticks` publisher and, as deltas, on the `book` out-state; each
carries `pad` bytes of padding (so a subscriber that never reads fills its queue)."""

import time

connection_models = {"out": {"ticks": {
    "connection_type": "publisher",
    "required_arguments": {"n": int, "pad": str},
    "optional_creation_arguments": {"min_subscribers": 2, "wait_for_subscribers_s": 15.0},
}}}
state_models = {"out": {"book": {
    "state_type": "delta_update_out",
    "optional_arguments": {"n": int, "pad": str},
}}}
config_model = {"optional": {"count": int, "interval_s": float, "pad": int}}


def main(to_send, config):
    pad = "x" * config.get("pad", 10_000)
    interval = config.get("interval_s", 0.0005)
    started = time.monotonic()
    for n in range(1, config.get("count", 4000) + 1):
        to_send("connection", "ticks", {"n": n, "pad": pad})
        to_send("state", "book", {"n": n, "pad": pad})
        delay = started + n * interval - time.monotonic()  # paced, whatever each send took
        if delay > 0:
            time.sleep(delay)
