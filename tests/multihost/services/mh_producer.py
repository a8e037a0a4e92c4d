"""Host A's order-book producer (main mode): `count` deltas of `{"levels": {key: n}}`, one
every `interval_s`, published through the proxy (`is_x_pub`); snapshots served from its
own replyer. Then it serves for `hold_s` more seconds."""

import time

config_model = {"optional": {"count": int, "interval_s": float, "hold_s": float}}
LEVELS = 50

state_models = {"out": {"book": {
    "state_type": "delta_update_out",
    "optional_arguments": {"levels": {str: int}},
    "optional_creation_arguments": {"is_x_pub": True, "heartbeat_s": 0.5},
}}}


def expected_book(count: int) -> dict:
    """The book after `count` deltas: what every consumer must end with."""
    return {"levels": {str(n % LEVELS): n for n in range(count)}}


def main(to_send, config):
    for n in range(config.get("count", 1000)):
        to_send("state", "book", {"levels": {str(n % LEVELS): n}})
        time.sleep(config.get("interval_s", 0.01))
    time.sleep(config.get("hold_s", 30.0))
