"""Addresses for a service under test: free loopback ports on ZMQ, plain names on the bus."""

from __future__ import annotations

import itertools
import socket
import weakref
from typing import Any, Callable, Iterator

from service_framework.addresses import plan_addresses

# The next harness port of each memory bus, counted from 20000 per bus.
_bus_ports: "weakref.WeakKeyDictionary[Any, Iterator[int]]" = weakref.WeakKeyDictionary()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


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
