"""Main mode: `count` requests `{"n": start…}` on `work`, one at a time; returns the
replies. `timeout_s` and `retries` come from config. Used by `tests/test_conformance.py`.
"""

connection_models = {"out": {"work": {
    "connection_type": "requester",
    "required_arguments": {"n": int},
    "required_return_arguments": {"n": int, "by": str, "calls": int},
    "optional_creation_arguments": {"timeout_s": 2.0, "retries": 2},
}}}
config_model = {"optional": {"count": int, "start": int, "timeout_s": float,
                             "retries": int}}


def setup_connections(config):
    return {"work": {"timeout_s": config.get("timeout_s", 2.0),
                     "retries": config.get("retries", 2)}}


def main(to_send, config):
    start = config.get("start", 0)
    return [to_send("connection", "work", {"n": n})
            for n in range(start, start + config.get("count", 1))]
