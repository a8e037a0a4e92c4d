"""Main mode: one echo request every `interval_s` (`time.sleep`), each answer or timeout
noted with the time `time.monotonic()` gave, relative to the start; `main` returns them."""

import time

from service_framework import RequestTimeout

connection_models = {"out": {"echo": {
    "connection_type": "requester",
    "required_arguments": {"text": str},
    "required_return_arguments": {"text": str, "count": int},
    "optional_creation_arguments": {"timeout_s": 0.5},
}}}
config_model = {"optional": {"count": int, "interval_s": float}}


def main(to_send, config):
    start, results = time.monotonic(), []
    for number in range(config.get("count", 5)):
        sent_at = round(time.monotonic() - start, 6)
        try:
            to_send("connection", "echo", {"text": f"tick {number}"})
            results.append((number, "ok", sent_at))
        except RequestTimeout:
            results.append((number, "timeout", sent_at))
        time.sleep(config.get("interval_s", 1.0))
    return results
