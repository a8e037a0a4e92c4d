"""Order-book producer (main mode): a `delta_update_out` state `book`.

It publishes the whole book once (`is_snapshot`), then `count` deltas, one every
`interval_s`: new or changed price levels, and deletions (a level set to None). The
framework numbers the updates, serves snapshots to consumers that join late, and sends
heartbeats while idle. After the stream it keeps serving for `hold_s` seconds.

    service_framework -s examples/order_book/producer.py -a examples/order_book/addresses.json \
        -c examples/order_book/producer_config.json -m
"""

import random
import time
from datetime import datetime, timezone
from decimal import Decimal

from service_framework import get_logger

log = get_logger()

BOOK = {"asks": {Decimal: Decimal}, "bids": {Decimal: Decimal}, "updated_time": datetime}

config_model = {
    "required": {},
    "optional": {"count": int, "interval_s": float, "seed": int, "hold_s": float,
                 "heartbeat_s": float},
}

state_models = {
    "out": {
        "book": {
            "state_type": "delta_update_out",
            "required_arguments": BOOK,
        }
    }
}


def setup_states(config):
    return {"book": {"heartbeat_s": config.get("heartbeat_s", 1.0)}}


def _utc_now():
    return datetime.now(timezone.utc)


def book_updates(count, seed=1, now=_utc_now):
    """The first update (a whole book, `is_snapshot`), then `count` deltas; fixed by `seed`."""
    rng = random.Random(seed)
    mid = Decimal("100.0")
    book = {"asks": {}, "bids": {}}
    for level in range(1, 6):
        book["asks"][mid + Decimal(level) / 10] = Decimal(rng.randint(1, 500)) / 100
        book["bids"][mid - Decimal(level) / 10] = Decimal(rng.randint(1, 500)) / 100
    yield {**book, "updated_time": now(), "is_snapshot": True}
    levels = {side: set(prices) for side, prices in book.items()}
    for _ in range(count):
        side = rng.choice(("asks", "bids"))
        if levels[side] and rng.random() < 0.3:
            price = rng.choice(sorted(levels[side]))
            levels[side].discard(price)
            size = None  # JSON Merge Patch: None deletes the level
        else:
            offset = Decimal(rng.randint(1, 30)) / 10
            price = mid + offset if side == "asks" else mid - offset
            levels[side].add(price)
            size = Decimal(rng.randint(1, 500)) / 100
        yield {side: {price: size}, "updated_time": now()}


def main(to_send, config):
    count, interval_s = config.get("count", 100), config.get("interval_s", 0.05)
    for number, update in enumerate(book_updates(count, config.get("seed", 1))):
        to_send("state", "book", update)
        if number and number % 100 == 0:
            log.info("published %d deltas", number)
        time.sleep(interval_s)
    log.info("published the book and %d deltas; serving snapshots for %ss",
             count, config.get("hold_s", 0.0))
    time.sleep(config.get("hold_s", 0.0))
