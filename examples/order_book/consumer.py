"""Order-book consumer: a `delta_update_in` state `book`, and a replyer `book` that returns it.

The framework keeps `states['book']` equal to the producer's book: it subscribes, asks
for a snapshot, applies the numbered deltas in order, and asks for a new snapshot after a
gap, a producer restart or silence. While it recovers, the replyer answers with the last
good book.

    service_framework -s examples/order_book/consumer.py -a examples/order_book/addresses.json \
        -c examples/order_book/consumer_config.json
"""

from datetime import datetime
from decimal import Decimal

from service_framework import get_logger

log = get_logger()

BOOK = {"asks": {Decimal: Decimal}, "bids": {Decimal: Decimal}, "updated_time": datetime}

config_model = {"required": {}, "optional": {"snapshot_timeout_s": float, "heartbeat_s": float}}


def on_update(args, to_send, states, config):
    book = states["book"]
    log.debug("book updated: %d ask and %d bid levels", len(book.get("asks", ())),
              len(book.get("bids", ())))


def on_book_request(args, to_send, states, config):
    return dict(states["book"])  # {} until the first snapshot arrived


def setup_states(config):
    return {"book": {key: config[key] for key in ("snapshot_timeout_s", "heartbeat_s")
                     if key in config}}


state_models = {
    "in": {
        "book": {
            "state_type": "delta_update_in",
            "required_arguments": BOOK,
            "optional_creation_arguments": {"on_update": on_update},
        }
    }
}

connection_models = {
    "in": {
        "book": {
            "connection_type": "replyer",
            "required_creation_arguments": {"on_new_request": on_book_request},
            "optional_return_arguments": BOOK,
        }
    }
}
