"""Oversized messages are refused before they are allocated (issue 11, item 6); clients
that never read their replies cannot pin memory (item 7).

Every socket carries ZMQ_MAXMSGSIZE from `max_message_bytes` (16 MiB by default): libzmq
drops a longer message, and the connection of its sender, without allocating it. Before,
the check ran on the whole received message: a 200 MB message cost 440 MiB at peak.
"""

from __future__ import annotations

import pytest
import zmq
from helpers import (
    EXAMPLES,
    TEST_SERVICES,
    cpu_seconds,
    endpoint,
    free_port,
    load_module,
    rss_mib,
    wait_until,
)

from hostile.attack import Dealer, Target, echo_replyer
from service_framework import Service
from service_framework.states import protocol
from service_framework.transport.base import SocketKind
from service_framework.transport.memory import MemoryBus

MB = 1_000_000


def test_three_200_mb_messages_at_once_cost_under_50_mib(tmp_path):
    target, port = echo_replyer(tmp_path)
    attackers = [Dealer(port) for _ in range(3)]
    try:
        baseline = rss_mib(target.pid)
        huge = b"\x00" * (200 * MB)
        for attacker in attackers:
            attacker.socket.send(huge, copy=False)
        # Each attacker is disconnected unread; libzmq reconnects it (it connected), so
        # the service answers it again afterwards.
        for attacker in attackers:
            assert wait_until(lambda a=attacker: a.echo("still there", timeout_ms=300),
                              timeout=20, message="an answer after the oversize message")
        growth = rss_mib(target.pid, peak=True) - baseline
        assert growth < 50, f"peak grew {growth:.0f} MiB"
    finally:
        for attacker in attackers:
            attacker.close()
        assert target.stop() == 0


def test_a_body_at_the_limit_passes_and_one_byte_more_does_not():
    port = free_port()
    service = Service(service_module=load_module(EXAMPLES / "echo" / "replyer.py"),
                      console_loglevel="CRITICAL", max_message_bytes=65_536,
                      addresses={"connections": {"in": {"echo": {"replyer": endpoint(port)}}}})
    service.run_service()
    client = Dealer(port)
    try:
        text = "x" * 60_000
        assert client.echo(text) == {"text": text, "count": 1}
        client.socket.send(b"\x00" * 65_537)  # one byte over: dropped unread
        assert wait_until(lambda: client.echo("again", timeout_ms=300), timeout=10,
                          message="an answer after reconnecting") == {"text": "again",
                                                                       "count": 2}
    finally:
        client.close()
        service.stop_service()


def test_the_memory_bus_drops_a_message_over_its_receivers_limit():
    bus = MemoryBus(seed=1)
    server = bus.socket(SocketKind.ROUTER, owner="svc.in", max_bytes=100)
    server.bind("127.0.0.1:1")
    client = bus.socket(SocketKind.DEALER, owner="peer.out")
    client.connect("127.0.0.1:1")
    assert client.send([b"x" * 101])  # the sender is not told, as with libzmq
    assert client.send([b"y" * 100])
    bus.run_until_idle()
    received = server.recv()
    assert received is not None and received[-1] == b"y" * 100
    assert server.recv() is None
    assert bus.oversized_dropped == 1


# -- item 7: clients that never read their replies ---------------------------------------------
def attackers_that_never_read(port: int, count: int = 3) -> list[Dealer]:
    """Clients whose receive queues hold one message: what they do not read stays with the
    service (TCP backpressure), as with a client that never calls recv."""
    return [Dealer(port, SNDHWM=0, RCVHWM=1, RCVBUF=4096) for _ in range(count)]


def test_clients_that_never_read_replies_cannot_pin_memory():
    # In this process (real sockets all the same), so the test can wait until the service
    # has handled every request before it measures.
    port = free_port()
    module = load_module(EXAMPLES / "echo" / "replyer.py")
    service = Service(service_module=module, console_loglevel="CRITICAL",
                      addresses={"connections": {"in": {"echo": {"replyer": endpoint(port)}}}})
    service.run_service()
    attackers = attackers_that_never_read(port)
    try:
        baseline = rss_mib()
        for _ in range(400):
            for attacker in attackers:
                attacker.send_echo("x" * MB)
        wait_until(lambda: module.served["count"] == 1200, timeout=60,
                   message="every request handled")
        held = rss_mib() - baseline
        assert held < 300, f"{held:.0f} MiB held for 3 clients that never read"
        assert service.runtime.counters["replies_dropped"] > 1000
    finally:
        for attacker in attackers:
            attacker.close()
    try:
        wait_until(lambda: rss_mib() < baseline + 100, timeout=10,
                   message=f"memory back near its baseline ({baseline:.0f} MiB)")
    finally:
        service.stop_service()


@pytest.mark.parametrize("peers, requests", [
    (3, 1000),
    (30, 100),  # 16 MiB held per peer would be 480 MiB: the ROUTER's total is bounded too
    (300, 4),  # one reply each to 300 peers holding nothing held 290 MiB: bounded as well
])
def test_snapshot_requests_never_read_cannot_pin_memory(tmp_path, peers, requests):
    ticks, book, snapshots = free_port(), free_port(), free_port()
    target = Target(tmp_path, TEST_SERVICES / "steady_publisher.py", {
        "connections": {"out": {"ticks": {"publisher": endpoint(ticks)}}},
        "states": {"out": {"book": {"publisher": endpoint(book),
                                    "replyer": endpoint(snapshots)}}}},
        "-m", "--count=1", "--interval_s=600", "--pad=1000000", "-cl", "ERROR")
    readers = [zmq.Context.instance().socket(zmq.SUB) for _ in range(2)]
    for reader in readers:  # the publisher's two subscribers, so that it starts
        reader.setsockopt(zmq.SUBSCRIBE, b"")
        reader.linger = 0
        reader.connect(f"tcp://{endpoint(ticks)}")
    attackers = attackers_that_never_read(snapshots, peers)
    try:
        probe = Dealer(snapshots)

        def one_mb_snapshot() -> bool:  # the first update done: the value holds 1 MB
            probe.socket.send(protocol.encode_snapshot_request("probe"))
            return probe.socket.poll(500) and len(probe.socket.recv_multipart()[-1]) > MB
        wait_until(one_mb_snapshot, timeout=20, message="a 1 MB snapshot served")
        probe.close()
        baseline = rss_mib(target.pid)
        for number in range(requests):
            for attacker in attackers:
                attacker.socket.send(protocol.encode_snapshot_request(f"r{number}"))
        last: list[float] = []

        def idle() -> bool:  # every request read and answered (or refused): no more work
            last.append(cpu_seconds(target.pid))  # one sample per 0.25 s
            return len(last) > 2 and last[-1] - last[-2] < 0.02
        wait_until(idle, timeout=60, interval=0.25, message="the out-state done with them")
        held = rss_mib(target.pid) - baseline
        # at most twice DEFAULT_TOTAL_BYTES (128 MiB) of replies, and the interpreter's own
        assert held < 200, f"{held:.0f} MiB held for {peers} in sides that never read"
        honest = Dealer(snapshots)
        honest.socket.send(protocol.encode_snapshot_request("honest"))
        assert honest.socket.poll(30_000), "no snapshot for a client that reads"
        honest.close()
    finally:
        for socket in readers:
            socket.close()
        for attacker in attackers:
            attacker.close()
        target.stop()
