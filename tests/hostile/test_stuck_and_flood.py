"""A stuck subscriber never starves the others; subscription floods stay bounded
(issue 11, items 1 and 2).

Over real sockets, against services run by the CLI: a subscriber that never reads fills
its own queue and loses its own copies (ZeroMQ's PUB semantics, no XPUB_NODROP); the
healthy subscriber beside it receives at least 99%. Subscriptions are read as they come
and duplicates are not even queued once nothing counts them (XPUB_VERBOSE off): 300k
duplicate 1 KB subscriptions grow a publisher and an out-state by under 20 MiB.
"""

from __future__ import annotations

import logging
import time

import zmq
from helpers import EXAMPLES, TEST_SERVICES, endpoint, free_port, rss_mib, wait_until

from hostile.attack import Target
from service_framework.states import protocol
from service_framework.wire.envelope import decode_request


def sub_socket(port: int, *, stuck: bool) -> zmq.Socket:
    socket = zmq.Context.instance().socket(zmq.SUB)
    socket.linger = 0
    if stuck:  # a peer that never reads: the smallest queues it can ask for
        socket.setsockopt(zmq.RCVHWM, 1)
        socket.setsockopt(zmq.RCVBUF, 4096)
    socket.setsockopt(zmq.SUBSCRIBE, b"")
    socket.connect(f"tcp://{endpoint(port)}")
    return socket


def test_a_stuck_subscriber_does_not_starve_a_healthy_one(tmp_path):
    ticks, book, snapshots = free_port(), free_port(), free_port()
    stuck = [sub_socket(port, stuck=True) for port in (book, ticks)]
    healthy = {name: sub_socket(port, stuck=False) for name, port in (("book", book),
                                                                      ("ticks", ticks))}
    target = Target(tmp_path, TEST_SERVICES / "steady_publisher.py", {
        "connections": {"out": {"ticks": {"publisher": endpoint(ticks)}}},
        "states": {"out": {"book": {"publisher": endpoint(book),
                                    "replyer": endpoint(snapshots)}}}},
        "-m", "--count=4000", "--interval_s=0.0005", "--pad=10000")
    seen: dict[str, list[int]] = {"ticks": [], "book": []}
    poller = zmq.Poller()
    for socket in healthy.values():
        poller.register(socket, zmq.POLLIN)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            events = dict(poller.poll(200))
            for name, socket in healthy.items():
                while socket in events and socket.poll(0):
                    body = socket.recv_multipart()[-1]
                    if name == "ticks":
                        seen[name].append(decode_request(body, max_bytes=1 << 24).args["n"])
                    else:
                        message = protocol.decode_message(body, max_bytes=1 << 24)
                        if hasattr(message, "args"):
                            seen[name].append(message.seq)
            if target.process.poll() is not None and not events:
                break
        assert target.process.wait(timeout=10) == 0, target.log()
    finally:
        for socket in [*stuck, *healthy.values()]:
            socket.close()
    for name, numbers in seen.items():
        assert numbers, f"the healthy {name} subscriber got nothing"
        expected = numbers[-1] - numbers[0] + 1  # from its first: joining late is no loss
        assert len(numbers) >= 0.99 * expected and numbers[-1] >= 3900, \
            f"{name}: {len(numbers)} of {expected}"


def test_a_subscriber_counts_publications_lost_on_the_way(sf_bus, caplog):
    caplog.set_level(logging.WARNING, logger="service_framework")
    addresses = EXAMPLES / "pubsub" / "addresses.json"
    subscriber = sf_bus.service(EXAMPLES / "pubsub" / "subscriber.py", addresses=addresses)
    publisher = sf_bus.service(EXAMPLES / "pubsub" / "publisher.py", main_mode=True,
                               addresses=addresses, config={
                                   "count": 10, "min_subscribers": 1,
                                   "wait_for_subscribers_s": 5.0})
    sf_bus.faults.drop(kind="publish", nth=3)
    sf_bus.faults.drop(kind="publish", nth=6)
    publisher.run_main()
    sf_bus.run_until_idle()
    ticks = subscriber.runtime.in_connections["ticks"]
    assert ticks.received == 8
    assert ticks.lost == 2 and subscriber.runtime.counters["publications_lost"] == 2
    warned = [r.getMessage() for r in caplog.records if "lost on the way" in r.getMessage()]
    assert len(warned) == 2 and "1 publication(s) from publisher.ticks" in warned[0]


def subscription_flood(port: int, count: int = 300_000) -> None:
    """`count` duplicate 1 KB subscriptions from one raw peer."""
    flooder = zmq.Context.instance().socket(zmq.XSUB)
    flooder.linger = 0
    flooder.setsockopt(zmq.SNDHWM, 0)
    flooder.connect(f"tcp://{endpoint(port)}")
    message = b"\x01" + b"f" * 1024
    try:
        for _ in range(count):
            flooder.send(message)
    finally:
        flooder.close(linger=2000)


def test_a_subscription_flood_grows_a_publisher_and_an_out_state_by_under_20_mib(tmp_path):
    ticks, book, snapshots = free_port(), free_port(), free_port()
    target = Target(tmp_path, TEST_SERVICES / "steady_publisher.py", {
        "connections": {"out": {"ticks": {"publisher": endpoint(ticks)}}},
        "states": {"out": {"book": {"publisher": endpoint(book),
                                    "replyer": endpoint(snapshots)}}}},
        "-m", "--count=1000000", "--interval_s=0.01", "--pad=10")
    readers = [sub_socket(port, stuck=False) for port in (ticks, ticks)]  # its 2 subscribers
    try:
        wait_until(lambda: readers[0].poll(100), timeout=15, message="the first tick")
        baseline = rss_mib(target.pid)
        subscription_flood(book)
        subscription_flood(ticks)
        for reader in readers:  # still publishing, and to them
            while reader.poll(0):
                reader.recv_multipart()
            assert reader.poll(5000), "no tick after the flood"
        growth = rss_mib(target.pid, peak=True) - baseline
        assert growth < 20, f"grew {growth:.0f} MiB"
    finally:
        for reader in readers:
            reader.close()
        target.stop()

