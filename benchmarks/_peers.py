"""The other side of the benchmarks, each in a process of its own (so no GIL is shared).

    python benchmarks/_peers.py ROLE PORT [TRACE | SUBSCRIBERS]

Roles: `raw-rep` (pyzmq REP + msgpack), `sf-rep` (a framework replyer Service; with TRACE
it records), `raw-pub` (pyzmq PUB publishing flat out), `sf-pub` (a framework publisher
publishing flat out once SUBSCRIBERS subscribers, default 1, are there), both paused until a
"1" line on stdin ("0" pauses them again), `rss` (a service whose out-state holds
PORT price levels; prints its peak memory as JSON and exits), `book-out` (an out-state of
PORT price levels on the ports TRACE names, "PUB,REP"; "ready" once full). SIGTERM stops
every role.
"""

from __future__ import annotations

import json
import os
import select
import signal
import sys
from pathlib import Path

import zmq

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402 - after the path fix, as a script
    PAYLOAD,
    book_producer,
    echo_replyer,
    raw_pack,
    raw_unpack,
    status_kib,
    ticks_publisher,
)

stopping = False


def _stop(signum, frame) -> None:
    global stopping
    stopping = True


class Switch:
    """Publishers start paused; a "1" line on stdin resumes them, a "0" pauses them.

    A pipe keeps the order of the parent's commands (two signals sent back to back may
    be handled in signal-number order instead).
    """

    def __init__(self) -> None:
        self.on = False
        os.set_blocking(0, False)
        print("ready", flush=True)

    def running(self) -> bool:
        """Reads any new commands; while paused, waits for one (no busy loop)."""
        while True:
            try:
                data = os.read(0, 4096)
            except BlockingIOError:
                data = None
            if data == b"":  # the parent is gone
                raise SystemExit(0)
            if data:
                self.on = data.rstrip(b"\n")[-1:] == b"1"
            if self.on or stopping:
                return not stopping
            select.select([0], [], [], 0.5)


def raw_rep(port: int) -> None:
    context = zmq.Context()
    rep = context.socket(zmq.REP)
    rep.bind(f"tcp://127.0.0.1:{port}")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        rep.send(raw_pack(raw_unpack(rep.recv())))


def sf_rep(port: int, trace: str | None) -> None:
    from service_framework import Service

    service = Service(service_module=echo_replyer(), console_loglevel="WARNING",
                      addresses={"connections": {"in": {"echo": {
                          "replyer": f"127.0.0.1:{port}"}}}},
                      record_path=trace)
    service.run_service_blocking()  # SIGTERM: a clean stop (drain, flush the trace)


def raw_pub(port: int) -> None:
    context = zmq.Context()
    pub = context.socket(zmq.PUB)
    pub.bind(f"tcp://127.0.0.1:{port}")
    signal.signal(signal.SIGTERM, _stop)
    switch = Switch()
    send = pub.send_multipart
    while switch.running():
        for _ in range(100):
            send([b"ticks", raw_pack(PAYLOAD)])


def sf_pub(port: int, subscribers: int) -> None:
    from service_framework import Service

    service = Service(service_module=ticks_publisher(min_subscribers=subscribers,
                                                     wait_for_subscribers_s=30.0),
                      console_loglevel="ERROR",  # drops at the high-water mark are expected
                      addresses={"connections": {"out": {"ticks": {
                          "publisher": f"127.0.0.1:{port}"}}}})
    service.run_service()
    signal.signal(signal.SIGTERM, _stop)
    switch = Switch()
    to_send = service.runtime.to_send
    while switch.running():
        for _ in range(100):
            to_send("connection", "ticks", PAYLOAD)
    service.stop_service()


def rss(levels: int) -> None:
    from decimal import Decimal

    from _common import free_port

    from service_framework import Service
    from service_framework.states import protocol

    publisher, replyer = free_port(), free_port()
    service = Service(service_module=book_producer(), console_loglevel="WARNING",
                      addresses={"states": {"out": {"book": {
                          "publisher": f"127.0.0.1:{publisher}",
                          "replyer": f"127.0.0.1:{replyer}"}}}})
    service.run_service()
    empty = status_kib("VmHWM")
    to_send = service.runtime.to_send
    chunk = 1000
    for start in range(0, levels, chunk):
        side = "asks" if start % (2 * chunk) else "bids"
        to_send("state", "book", {side: {Decimal(n) / 100: Decimal(n % 97 + 1)
                                         for n in range(start, min(levels, start + chunk))}})
    filled = status_kib("VmHWM")
    # One late joiner asks for a snapshot: the whole book is encoded once.
    context = zmq.Context.instance()
    dealer = context.socket(zmq.DEALER)
    dealer.connect(f"tcp://127.0.0.1:{replyer}")
    dealer.send(protocol.encode_snapshot_request("rss"))
    if not dealer.poll(30_000):
        raise SystemExit("no snapshot reply within 30 s")
    body = dealer.recv_multipart()[-1]
    served = status_kib("VmHWM")  # before this client decodes it: the service's peak
    snapshot = protocol.decode_snapshot(body)
    dealer.close(0)
    value = service.runtime.out_states["book"].value
    keys = sum(len(side) for side in value.values())
    result = {"levels": keys, "snapshot_levels": sum(len(s) for s in snapshot.value.values()),
              "snapshot_bytes": len(body), "hwm_empty_kib": empty, "hwm_filled_kib": filled,
              "hwm_kib": served, "rss_kib": status_kib("VmRSS")}
    del snapshot
    service.stop_service()
    print(json.dumps(result), flush=True)


def book_out(levels: int, ports: str) -> None:
    """An out-state of `levels` price levels on PUBLISHER,REPLYER ports; "ready" once full."""
    from _states import fill

    from service_framework import Service

    publisher, replyer = ports.split(",")
    service = Service(service_module=book_producer(), console_loglevel="WARNING",
                      addresses={"states": {"out": {"book": {
                          "publisher": f"127.0.0.1:{publisher}",
                          "replyer": f"127.0.0.1:{replyer}"}}}})
    service.run_service()
    fill(service.runtime.to_send, levels)
    signal.signal(signal.SIGTERM, _stop)
    print("ready", flush=True)
    while not stopping:
        select.select([], [], [], 0.2)
    service.stop_service()


def main() -> None:
    role, number = sys.argv[1], int(sys.argv[2])
    trace = sys.argv[3] if len(sys.argv) > 3 else None
    if role == "raw-rep":
        raw_rep(number)
    elif role == "sf-rep":
        sf_rep(number, trace)
    elif role == "raw-pub":
        raw_pub(number)
    elif role == "sf-pub":
        sf_pub(number, int(sys.argv[3]) if len(sys.argv) > 3 else 1)
    elif role == "rss":
        rss(number)
    elif role == "book-out":
        book_out(number, sys.argv[3])
    else:
        raise SystemExit(f"unknown role {role!r}")


if __name__ == "__main__":
    main()
