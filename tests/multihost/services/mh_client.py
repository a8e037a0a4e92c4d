"""Host A's client (main mode): asks the echo replicas every `interval_s` for `duration_s`
and prints one JSON line per request: when, which replica answered (or the error;
a reply to another request is one)."""

import json
import time

config_model = {"optional": {"duration_s": float, "interval_s": float}}

connection_models = {"out": {"echo": {
    "connection_type": "requester",
    "required_arguments": {"text": str},
    "required_return_arguments": {"text": str, "replica": str, "runs": int},
    "optional_creation_arguments": {"timeout_s": 0.5, "retries": 1},
}}}


def main(to_send, config):
    end = time.monotonic() + config.get("duration_s", 20.0)
    number = 0
    while time.monotonic() < end:
        started = time.time()
        try:
            reply = to_send("connection", "echo", {"text": str(number)})
            line = {"t": started, "took": time.time() - started, "replica": reply["replica"]}
            if reply["text"] != str(number):  # another request's reply: a failure too
                line["error"] = f"request {number} got the reply to {reply['text']!r}"
        except Exception as error:  # the test counts these: there must be none
            line = {"t": started, "error": f"{type(error).__name__}: {error}"}
        print(json.dumps(line), flush=True)
        number += 1
        time.sleep(config.get("interval_s", 0.05))
