"""`service_framework proxy --xsub ENDPOINT --xpub ENDPOINT`: a fan-out point for many hosts.

Publishers and out-states with `is_x_pub` connect to the XSUB endpoint; subscribers and
in-states subscribe at the XPUB endpoint; a state's snapshot requests still go straight
to its out side. Runs until SIGTERM or SIGINT, then exits 0; a bad endpoint exits 2 with
one line naming the option.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import Sequence

from ..addresses import normalize_endpoint
from ..errors import ConfigError
from ..logs import get_logger
from ..transport.proxy import DEFAULT_HWM, Proxy

EXIT_OK, EXIT_LOAD_ERROR = 0, 2
MAX_HWM = 2**31 - 1  # libzmq's HWM options are C ints


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="service_framework proxy",
        description="Forward publications from an XSUB endpoint to subscribers on an XPUB "
                    "endpoint (libzmq's own proxy), until SIGTERM or SIGINT.")
    parser.add_argument("--xsub", required=True, metavar="ENDPOINT",
                        help="where publishers connect (host:port or a ZMQ endpoint)")
    parser.add_argument("--xpub", required=True, metavar="ENDPOINT",
                        help="where subscribers connect (host:port or a ZMQ endpoint)")
    parser.add_argument("--hwm", type=int, default=DEFAULT_HWM, metavar="N",
                        help=f"messages queued per subscriber and per publisher "
                             f"(default {DEFAULT_HWM:,})")
    return parser


def endpoint(value: str, option: str) -> str:
    """A full ZMQ endpoint other processes can reach (inproc:// is this process's own)."""
    full = normalize_endpoint(value, where=option)
    if full.startswith("inproc://"):
        raise ConfigError(f"{option}: {value!r} is inproc://, which no other process can "
                          "reach: give host:port or ipc://")
    return full


def main(argv: Sequence[str]) -> int:
    options = build_parser().parse_args(list(argv))
    try:
        if not 0 < options.hwm <= MAX_HWM:
            raise ConfigError(f"--hwm: expected an int from 1 to {MAX_HWM}, got {options.hwm}")
        xsub, xpub = (endpoint(options.xsub, "--xsub"), endpoint(options.xpub, "--xpub"))
        if xsub == xpub:  # two ipc binds of one path: the second takes it, nothing flows
            raise ConfigError(f"--xpub: the same endpoint as --xsub ({options.xpub})")
        proxy = Proxy(xsub, xpub, hwm=options.hwm)
    except ConfigError as error:
        print(f"service_framework proxy: error: {error}", file=sys.stderr)
        return EXIT_LOAD_ERROR
    stopping = threading.Event()
    previous = {signum: signal.signal(signum, lambda *_: stopping.set())
                for signum in (signal.SIGTERM, signal.SIGINT)}
    proxy.start()
    get_logger().info("proxy: publishers to %s, subscribers at %s", proxy.bound["xsub"],
                      proxy.bound["xpub"])
    print(f"proxy ready: xsub {proxy.bound['xsub']} xpub {proxy.bound['xpub']}", flush=True)
    try:
        while not stopping.wait(0.5):
            if proxy.wait(0):
                break  # the forwarder ended by itself: an error
    finally:
        proxy.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if proxy.error is not None:
        print(f"service_framework proxy: error: {proxy.error}", file=sys.stderr)
        return 1
    return EXIT_OK
