"""`service_framework proxy`: libzmq's XSUB/XPUB proxy from the command line, so publishers
and out-states on many hosts publish into one place (issue 14, item 2)."""

from __future__ import annotations

import selectors
import signal
import subprocess
from typing import Iterator, NamedTuple

import pytest
from helpers import cli_command, endpoint, free_port, run_cli, wait_until
from test_migration_zmq import (
    publisher_module,
    send_state,
    start,
    started,  # noqa: F401 - a fixture
    state_module,
    subscriber_module,
)


class RunningProxy(NamedTuple):
    process: subprocess.Popen
    publishers: str  # where publishers connect (its XSUB side)
    subscribers: str  # where subscribers connect (its XPUB side)


@pytest.fixture
def cli_proxy() -> Iterator[RunningProxy]:
    xsub, xpub = endpoint(free_port()), endpoint(free_port())
    process = subprocess.Popen(cli_command("proxy", "--xsub", xsub, "--xpub", xpub),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            assert selector.select(20), "the proxy did not start"
            assert process.stdout.readline().startswith("proxy ready"), process.stderr.read()
        yield RunningProxy(process, xsub, xpub)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


def test_two_publishers_reach_two_subscribers_through_the_proxy(cli_proxy, started):  # noqa: F811
    subscribers = [subscriber_module() for _ in range(2)]
    for module in subscribers:
        start(started, module, {"connections": {"in": {"ticks": {
            "subscriber": cli_proxy.subscribers}}}})
    publishers = [start(started, publisher_module(is_x_pub=True, min_subscribers=1,
                                                  wait_for_subscribers_s=10.0),
                        {"connections": {"out": {"ticks": {
                            "publisher": cli_proxy.publishers}}}}) for _ in range(2)]
    for offset, publisher in enumerate(publishers):
        for num in range(offset * 100, offset * 100 + 50):
            publisher.runtime.to_send("connection", "ticks", {"num": num})
    expected = sorted([*range(0, 50), *range(100, 150)])
    for module in subscribers:
        wait_until(lambda module=module: len(module.received) >= 100, timeout=20,
                   message="every publication at both subscribers")
        assert sorted(module.received) == expected


def test_a_state_publishes_through_the_proxy_and_snapshots_go_straight(cli_proxy,
                                                                       started):  # noqa: F811
    replyer = endpoint(free_port())
    producer = start(started, state_module("producer", "out", "delta_update_out",
                                           is_x_pub=True),
                     {"states": {"out": {"counts": {"publisher": cli_proxy.publishers,
                                                    "replyer": replyer}}}})
    send_state(producer, {"total": 0, "seen": {}, "is_snapshot": True})
    consumer = start(started, state_module("consumer", "in", "delta_update_in",
                                           snapshot_timeout_s=0.5),
                     {"states": {"in": {"counts": {"subscriber": cli_proxy.subscribers,
                                                   "requester": replyer}}}})
    state = consumer.runtime.in_states["counts"]
    wait_until(lambda: state.synced and state.heartbeats >= 1, timeout=20,
               message="synced, and a heartbeat through the proxy")
    for num in range(1, 31):
        send_state(producer, {"total": num, "seen": {str(num): num}})
    out = producer.runtime.out_states["counts"]
    wait_until(lambda: state.seq == out.seq, timeout=20, message="the deltas through the proxy")
    assert state.value == out.value and state.value["total"] == 30


def test_the_proxy_stops_cleanly_on_sigterm(cli_proxy):
    cli_proxy.process.send_signal(signal.SIGTERM)
    assert cli_proxy.process.wait(10) == 0


@pytest.mark.parametrize("args, named", [
    (["--xsub", "nohost", "--xpub", "127.0.0.1:1"], "--xsub"),
    (["--xsub", "127.0.0.1:1", "--xpub", "udp://127.0.0.1:9"], "--xpub"),
    (["--xsub", "192.0.2.1:5555", "--xpub", "127.0.0.1:*"], "--xsub"),  # not this host's
    (["--xsub", "ipc:///tmp/sf-proxy-same", "--xpub", "ipc:///tmp/sf-proxy-same"], "--xpub"),
    (["--xsub", "inproc://here", "--xpub", "127.0.0.1:*"], "--xsub"),  # no other process
    (["--xsub", "127.0.0.1:*", "--xpub", "127.0.0.1:*", "--hwm", "99999999999"], "--hwm"),
])
def test_a_bad_endpoint_exits_2_naming_the_option(args, named):
    result = run_cli("proxy", *args)
    assert result.returncode == 2, result.stderr
    assert named in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_the_proxy_forwards_over_ipv6_loopback():
    import zmq

    from service_framework.transport.proxy import Proxy

    proxy = Proxy("tcp://[::1]:*", "tcp://[::1]:*").start()
    context = zmq.Context.instance()
    publisher, subscriber = context.socket(zmq.PUB), context.socket(zmq.SUB)
    try:
        for socket, side in ((publisher, "xsub"), (subscriber, "xpub")):
            socket.setsockopt(zmq.IPV6, 1)
            socket.linger = 0
            socket.connect(proxy.bound[side])
        subscriber.setsockopt(zmq.SUBSCRIBE, b"")

        def heard() -> bool:  # publish until the subscription has reached the publisher
            publisher.send(b"tick")
            return subscriber.poll(100) and subscriber.recv() == b"tick"
        wait_until(heard, timeout=10, message="a publication through the proxy on [::1]")
    finally:
        publisher.close()
        subscriber.close()
        proxy.stop()


def test_stop_returns_when_the_forwarder_died_of_an_error(monkeypatch):
    """The CLI calls stop() when the forwarder ended by itself: it must not wait on a control
    socket nobody reads. (libzmq's proxy is made to fail at once, standing in for any error
    it may raise; the sockets are real.)"""
    import threading

    import zmq

    from service_framework.transport.proxy import Proxy

    def failing(*args: object) -> None:
        raise zmq.ZMQError(zmq.EFAULT)

    monkeypatch.setattr(zmq, "proxy_steerable", failing)
    proxy = Proxy("tcp://127.0.0.1:*", "tcp://127.0.0.1:*").start()
    assert proxy.wait(10) and isinstance(proxy.error, zmq.ZMQError)
    stopper = threading.Thread(target=proxy.stop, daemon=True)
    stopper.start()
    stopper.join(10)
    assert not stopper.is_alive(), "stop() blocked on a control socket nobody reads"
