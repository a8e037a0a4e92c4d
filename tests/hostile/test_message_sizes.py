"""Oversized messages are refused before they are allocated (issue 11, item 6).

Every socket carries ZMQ_MAXMSGSIZE from `max_message_bytes` (16 MiB by default): libzmq
drops a longer message, and the connection of its sender, without allocating it. Before,
the check ran on the whole received message: a 200 MB message cost 440 MiB at peak.
"""

from __future__ import annotations

from helpers import EXAMPLES, endpoint, free_port, load_module, rss_mib, wait_until

from hostile.attack import Dealer, echo_replyer
from service_framework import Service
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
