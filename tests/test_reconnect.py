"""Peers that die and come back (real ZeroMQ on 127.0.0.1, free ports).

A requester keeps its socket settings and its service: while the replyer is down it gets
`RequestTimeout` (Lazy Pirate: a fresh socket each time), and once a replyer is back on the
same address the next request succeeds. A subscriber keeps its connection configured: ZMQ
reconnects it to a restarted publisher, which waits for its subscription before the first
message (so the test waits on a received message, never on a sleep).
"""

from __future__ import annotations

import signal
from typing import Any

import pytest
from helpers import (
    REPO,
    TEST_SERVICES,
    ask,
    endpoint,
    finish,
    free_port,
    load_module,
    make_module,
    port_is_listening,
    replyer_addresses,
    requester_addresses,
    start_cli,
    wait_until,
)

from service_framework import RequestTimeout
from service_framework.errors import RemoteError


def work_requester(timeout_s: float = 0.3) -> Any:
    return make_module("work_requester", connection_models={"out": {"work": {
        "connection_type": "requester",
        "required_arguments": {"n": int},
        "required_return_arguments": {"n": int},
        "optional_creation_arguments": {"timeout_s": timeout_s},
    }}})


def answers(requester: Any, n: int) -> bool:
    """One request; True if it was answered, False on a timeout (the replyer is not back)."""
    try:
        return ask(requester, "work", {"n": n}) == {"n": n}
    except (RequestTimeout, RemoteError):  # RemoteError: ServiceStopping from a stopping one
        return False


class CliReplyer:
    """`slow_echo.py` run by the CLI on a fixed port; `kill()` is a crash (SIGKILL)."""

    def __init__(self, tmp_path, port: int) -> None:
        self.addresses = tmp_path / "addresses.json"
        self.addresses.write_text(f'{{"connections": {{"in": {{"work": {{"replyer": '
                                  f'"{endpoint(port)}"}}}}}}}}')
        self.port = port
        self.process = None

    def start(self) -> "CliReplyer":
        self.process = start_cli("-s", str(TEST_SERVICES / "slow_echo.py"), "-a",
                                 str(self.addresses), "-cl", "WARNING", "--delay_s", "0.0",
                                 cwd=REPO)
        wait_until(lambda: port_is_listening(self.port) or self.process.poll() is not None,
                   20.0, message="the replyer listening")
        assert self.process.poll() is None, finish(self.process)
        return self

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            finish(self.process, send=signal.SIGTERM)


@pytest.mark.parametrize("death", ["killed", "stopped"])
def test_a_requester_is_served_again_by_a_replyer_restarted_on_its_address(
        services, tmp_path, death):
    port = free_port()
    requester = services.start(work_requester(), requester_addresses("work", port))
    replyer = CliReplyer(tmp_path, port).start()
    try:
        assert answers(requester, 1)
        if death == "killed":
            replyer.kill()
        else:
            replyer.stop()
        with pytest.raises(RequestTimeout):
            ask(requester, "work", {"n": 2})
        with pytest.raises(RequestTimeout):  # and again: no stuck state after a timeout
            ask(requester, "work", {"n": 3})
        replyer.start()  # the same port, the same requester service
        wait_until(lambda: answers(requester, 4), 20.0, message="an answer after the restart")
        assert ask(requester, "work", {"n": 5}) == {"n": 5}
        assert requester.runtime.counters.get("request_timeouts", 0) >= 2
    finally:
        replyer.stop()


def test_an_in_process_replyer_restarted_on_the_same_port_serves_the_same_requester(services):
    port = free_port()
    replyer_module = load_module(TEST_SERVICES / "slow_echo.py")
    requester = services.start(work_requester(), requester_addresses("work", port))
    first = services.start(replyer_module, replyer_addresses("work", port), {"delay_s": 0.0})
    assert answers(requester, 1)
    first.stop_service()
    with pytest.raises(RequestTimeout):
        ask(requester, "work", {"n": 2})
    services.start(replyer_module, replyer_addresses("work", port), {"delay_s": 0.0})
    wait_until(lambda: answers(requester, 3), 10.0, message="an answer after the restart")


def tick_subscriber() -> Any:
    received: list[tuple[str, int]] = []
    module = make_module("tick_listener", connection_models={"in": {"ticks": {
        "connection_type": "subscriber",
        "required_creation_arguments": {
            "on_new_message": lambda args, to_send, states, config: received.append(
                (args["gen"], args["n"]))},
        "required_arguments": {"gen": str, "n": int},
    }}})
    module.received = received
    return module


def start_ticker(tmp_path, port: int, gen: str):
    addresses = tmp_path / f"ticker-{gen}.json"
    addresses.write_text(f'{{"connections": {{"out": {{"ticks": {{"publisher": '
                         f'"{endpoint(port)}"}}}}}}}}')
    return start_cli("-s", str(TEST_SERVICES / "ticker.py"), "-a", str(addresses), "-m",
                     "-cl", "WARNING", "--gen", gen, "--interval_s", "0.005", cwd=REPO)


@pytest.mark.parametrize("death", ["killed", "stopped"])
def test_a_subscriber_keeps_receiving_after_its_publisher_restarts(services, tmp_path, death):
    port = free_port()
    listener = tick_subscriber()
    services.start(listener, {"connections": {"in": {"ticks": {
        "subscriber": [endpoint(port)]}}}})
    processes = []
    try:
        processes.append(start_ticker(tmp_path, port, "first"))
        wait_until(lambda: ("first", 3) in listener.received, 20.0,
                   message="ticks from the first publisher")
        if death == "killed":
            processes[0].kill()
            processes[0].wait(10)
        else:
            code, _, err = finish(processes[0], send=signal.SIGTERM)
            assert code == 0, err
        processes.append(start_ticker(tmp_path, port, "second"))
        wait_until(lambda: any(gen == "second" for gen, _ in listener.received), 20.0,
                   message="a tick from the restarted publisher")
        second = [n for gen, n in listener.received if gen == "second"]
        # the restarted publisher waited for the subscription: from its first tick, in order
        assert second == list(range(len(second)))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait(10)
