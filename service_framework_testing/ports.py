"""Addresses for a service under test: free loopback ports on ZMQ, plain names on the bus."""

from __future__ import annotations

import itertools
import socket
from typing import Callable

from service_framework.wiring import plan_addresses

_memory_ports = itertools.count(20000)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def addresses_factory(transport_name: str) -> Callable:
    """Makes `load_service(addresses_for=…)` give every socket its own loopback port."""
    next_port = free_port if transport_name == "zmq" else lambda: next(_memory_ports)

    def make(definition) -> dict:
        return plan_addresses(definition, lambda entry: f"127.0.0.1:{next_port()}")

    return make
