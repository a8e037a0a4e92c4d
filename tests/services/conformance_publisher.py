"""Main mode: publishes `{"n": start}` … `{"n": start + count - 1}` on `ticks`.

`min_subscribers` (default 0) makes the first message wait for that many subscriptions;
`topic` (default "ticks") is the topic frame. Used by `tests/test_conformance.py`.
"""

connection_models = {"out": {"ticks": {
    "connection_type": "publisher",
    "required_arguments": {"n": int},
    "optional_creation_arguments": {"topic": "ticks", "min_subscribers": 0,
                                    "wait_for_subscribers_s": 10.0},
}}}
config_model = {"optional": {"count": int, "start": int, "topic": str,
                             "min_subscribers": int, "wait_for_subscribers_s": float}}


def setup_connections(config):
    return {"ticks": {"topic": config.get("topic", "ticks"),
                      "min_subscribers": config.get("min_subscribers", 0),
                      "wait_for_subscribers_s": config.get("wait_for_subscribers_s", 10.0)}}


def main(to_send, config):
    start = config.get("start", 0)
    for n in range(start, start + config.get("count", 3)):
        to_send("connection", "ticks", {"n": n})
    return config.get("count", 3)
