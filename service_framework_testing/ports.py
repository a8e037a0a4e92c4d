"""Addresses for a service under test: free loopback ports on ZMQ, plain names on the bus."""

from __future__ import annotations

import itertools
import os
import socket
import weakref
from pathlib import Path
from typing import Any, Callable, Iterator

from service_framework.addresses import plan_addresses

# The next harness port of each memory bus, counted from 20000 per bus.
_bus_ports: "weakref.WeakKeyDictionary[Any, Iterator[int]]" = weakref.WeakKeyDictionary()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now, outside the kernel's
    ephemeral range.

    A port the kernel picked for `bind(("127.0.0.1", 0))` is an ephemeral one, and between
    that probe and the service's bind the kernel may give it to any outgoing connection as
    its local port — a ZeroMQ socket reconnecting to an address nobody listens on yet walks
    through that range every 100 ms (CI saw "address already in use" from exactly that).
    A port below the range is only ever taken by an explicit bind, which the probe sees.
    Ports are handed out in turn from a place set by the process id, so one process never
    gets the same port twice in a row and two processes rarely start at the same place.
    """
    for _ in range(len(_POOL)):
        port = _POOL[next(_turn) % len(_POOL)]
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise OSError(f"no free TCP port on 127.0.0.1 in {_POOL.start}-{_POOL.stop - 1}")


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = (int(part) for part in EPHEMERAL_RANGE_FILE.read_text().split())
    except (OSError, ValueError):
        return 32768, 65535  # Linux's default start, macOS's and Windows' end
    return low, high


def _pool() -> range:
    low, high = _ephemeral_range()
    if low - POOL_START >= 1000:
        return range(POOL_START, low)
    return range(high + 1, 65536) if high < 64535 else range(POOL_START, 32768)


EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
POOL_START = 10000  # above the well-known and most registered services' ports
_POOL = _pool()
_turn = itertools.count(os.getpid() * 7919)


def addresses_factory(transport: Any) -> Callable:
    """Makes `load_service(addresses_for=…)` give every socket its own loopback port.

    On a memory bus the ports are counted per bus, so one test's endpoints (which show in
    its traces and messages) never depend on the tests that ran before it.
    """
    if transport.name == "zmq":
        next_port = free_port
    else:
        ports = _bus_ports.get(transport)
        if ports is None:
            ports = _bus_ports[transport] = itertools.count(20000)
        next_port = ports.__next__

    def make(definition) -> dict:
        return plan_addresses(definition, lambda entry: f"127.0.0.1:{next_port()}")

    return make
