"""Tick subscriber: prints each tick and keeps a running count.

With the optional config `stop_after: N` it stops cleanly after N ticks: the handler sends
SIGTERM to its own process, which the framework turns into `sigterm_handler` and a clean
stop (exit status 0). That way of stopping is meant for the command line, where the
framework routes SIGTERM; when nothing handles SIGTERM (the service runs inside another
program, or a test) it only logs, and the owner stops it with `Service.stop_service()`.

From the repository root, in two terminals (either first):

    service_framework -s examples/pubsub/subscriber.py -a examples/pubsub/addresses.json \
        -c examples/pubsub/subscriber_config.json
    service_framework -s examples/pubsub/publisher.py -a examples/pubsub/addresses.json \
        -c examples/pubsub/publisher_config.json -m
"""

import os
import signal
from datetime import datetime
from decimal import Decimal

from service_framework import get_logger

log = get_logger()
received = {"count": 0}


def on_new_message(args, to_send, states, config):
    stop_after = config.get("stop_after")
    if stop_after is not None and received["count"] >= stop_after:
        return  # already stopping: the rest of this batch is ignored
    received["count"] += 1
    log.info("tick %d: %s %s", args["n"], args["symbol"], args["price"])
    print(f"tick {args['n']}: {args['symbol']} {args['price']} at {args['at'].isoformat()} "
          f"(running count {received['count']})", flush=True)
    if stop_after is not None and received["count"] >= stop_after:
        if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, signal.SIG_IGN, None):
            log.warning("stop_after=%d reached, but nothing here routes SIGTERM to the "
                        "service (not run by the CLI): not stopping", stop_after)
        else:
            os.kill(os.getpid(), signal.SIGTERM)


def sigterm_handler(signum, frame, to_send, states, config):
    print(f"received {received['count']} tick(s); stopping", flush=True)


sigint_handler = sigterm_handler

config_model = {"optional": {"stop_after": int}}

connection_models = {
    "in": {
        "ticks": {
            "connection_type": "subscriber",
            "required_creation_arguments": {"on_new_message": on_new_message},
            "required_arguments": {"n": int, "symbol": str, "price": Decimal, "at": datetime},
        }
    }
}
