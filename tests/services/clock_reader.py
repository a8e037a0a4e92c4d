"""Main mode: publishes three ticks, each with what `datetime.now()` and `time.time()` read,
0.2 s apart (virtual under a replay): what a replay must read as the recording did."""

import time
from datetime import datetime, timezone

connection_models = {"out": {"ticks": {
    "connection_type": "publisher",
    "required_arguments": {"n": int, "at": datetime, "wall": float},
}}}


def main(to_send, config):
    for n in range(3):
        to_send("connection", "ticks", {"n": n, "at": datetime.now(timezone.utc),
                                        "wall": time.time()})
        time.sleep(0.2)
