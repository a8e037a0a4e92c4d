"""Tick publisher (main mode): waits for a subscriber, publishes `count` ticks, then stops.

Run it with `-m`. No sleep after bind: the `ticks` publisher waits (up to
`wait_for_subscribers_s`) until `min_subscribers` subscriptions have arrived, so the first
tick is not lost to the slow-joiner problem. Start it as shown in `subscriber.py`.
"""

from datetime import datetime, timedelta, timezone
from decimal import Decimal

TICK = {"n": int, "symbol": str, "price": Decimal, "at": datetime}

connection_models = {
    "out": {
        "ticks": {
            "connection_type": "publisher",
            "required_arguments": TICK,
            "optional_creation_arguments": {"min_subscribers": 1, "wait_for_subscribers_s": 10.0},
        }
    }
}
config_model = {"optional": {"count": int, "symbol": str, "min_subscribers": int,
                             "wait_for_subscribers_s": float}}


def setup_connections(config):
    return {"ticks": {"min_subscribers": config.get("min_subscribers", 1),
                      "wait_for_subscribers_s": config.get("wait_for_subscribers_s", 10.0)}}


def main(to_send, config):
    start = datetime(2030, 1, 1, tzinfo=timezone.utc)
    symbol = config.get("symbol", "EURUSD")
    for n in range(1, config.get("count", 5) + 1):
        tick = {"n": n, "symbol": symbol, "price": Decimal("1.0850") + Decimal("0.0001") * n,
                "at": start + timedelta(seconds=n)}
        to_send("connection", "ticks", tick)
        print(f"published tick {n}: {symbol} {tick['price']} at {tick['at'].isoformat()}",
              flush=True)
