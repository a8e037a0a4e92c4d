"""Graceful shutdown under load (SPEC §16): no request sent to a stopping replyer is lost.

Several client threads, each with its own DEALER socket and a few requests in flight, keep
a replyer busy. The service is stopped in the middle of it (SIGTERM to a CLI-run service,
or `stop_service()` in-process). Every request a client sent must get an answer: its reply,
or a `ServiceStopping` error reply. A client stops sending once it was told the service is
stopping, as a requester would; none may wait for an answer that never comes.
"""

from __future__ import annotations

import signal
import threading
import time
from dataclasses import dataclass, field

import pytest
import zmq
from helpers import (
    REPO,
    TEST_SERVICES,
    endpoint,
    finish,
    free_port,
    load_module,
    port_is_listening,
    replyer_addresses,
    start_cli,
    wait_until,
)

from service_framework import Service
from service_framework.wire.envelope import decode_reply, encode_request

CLIENTS = 4
WINDOW = 3  # requests in flight per client: the replyer always has a queue
ANSWER_DEADLINE_S = 5.0  # a request unanswered this long is lost
RUNS = 5


@dataclass
class LoadClient:
    """One DEALER socket with up to WINDOW requests in flight; counts what comes back."""

    port: int
    index: int
    sent: int = 0
    replies: int = 0
    stopping: int = 0
    errors: list = field(default_factory=list)
    lost: list = field(default_factory=list)
    told_to_stop: bool = False

    def __post_init__(self) -> None:
        self.thread = threading.Thread(target=self._run, daemon=True,
                                       name=f"load-client-{self.index}")

    def start(self) -> "LoadClient":
        self.thread.start()
        return self

    @property
    def answered(self) -> int:
        return self.replies + self.stopping + len(self.errors)

    def _run(self) -> None:
        context = zmq.Context.instance()
        socket = context.socket(zmq.DEALER)
        socket.linger = 0
        socket.connect(f"tcp://{endpoint(self.port)}")
        outstanding: dict[str, float] = {}
        try:
            while True:
                while not self.told_to_stop and len(outstanding) < WINDOW:
                    rid = f"c{self.index}-{self.sent}"
                    socket.send(encode_request(rid, {"n": self.sent}, rid, max_bytes=1 << 20))
                    outstanding[rid] = time.monotonic()
                    self.sent += 1
                if not outstanding:
                    return
                if socket.poll(50):
                    reply = decode_reply(socket.recv_multipart()[-1], max_bytes=1 << 20)
                    if outstanding.pop(reply.rid, None) is None:
                        self.errors.append(f"answer to an unknown request {reply.rid!r}")
                    elif reply.error is None:
                        self.replies += 1
                    elif reply.error["type"] == "ServiceStopping":
                        self.stopping += 1
                        self.told_to_stop = True  # as a requester would: no new requests
                    else:
                        self.errors.append(reply.error)
                oldest = min(outstanding.values(), default=time.monotonic())
                if time.monotonic() - oldest > ANSWER_DEADLINE_S:
                    self.lost.extend(outstanding)
                    return
        finally:
            socket.close()

    def join(self, timeout: float) -> None:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"client {self.index} is still waiting"


def start_load(port: int) -> list[LoadClient]:
    clients = [LoadClient(port, index).start() for index in range(CLIENTS)]
    wait_until(lambda: all(c.replies >= 20 for c in clients), 10.0,
               message="every client getting replies")
    return clients


def assert_nothing_lost(clients: list[LoadClient]) -> None:
    for client in clients:
        client.join(ANSWER_DEADLINE_S + 5.0)
    report = [(c.index, c.sent, c.replies, c.stopping, c.errors, c.lost) for c in clients]
    for client in clients:
        assert client.lost == [], f"requests without an answer: {report}"
        assert client.errors == [], f"unexpected answers: {report}"
        assert client.answered == client.sent, report
        assert client.told_to_stop, f"client {client.index} was never told: {report}"


@pytest.mark.parametrize("run", range(RUNS))
def test_sigterm_under_load_answers_every_request_sent(tmp_path, run):
    port = free_port()
    addresses = tmp_path / "addresses.json"
    addresses.write_text(f'{{"connections": {{"in": {{"work": {{"replyer": '
                         f'"{endpoint(port)}"}}}}}}}}')
    process = start_cli("-s", str(TEST_SERVICES / "slow_echo.py"), "-a", str(addresses),
                        "-cl", "WARNING", "--delay_s", "0.002", cwd=REPO)
    try:
        wait_until(lambda: port_is_listening(port) or process.poll() is not None, 20.0,
                   message="the replyer listening")
        assert process.poll() is None, finish(process)
        clients = start_load(port)
        process.send_signal(signal.SIGTERM)
        assert_nothing_lost(clients)
        code, out, err = finish(process, timeout=10.0)
        assert code == 0, err
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.parametrize("drain_s", [1.0, 0.005], ids=["drained", "deadline-passes"])
@pytest.mark.parametrize("run", range(RUNS))
def test_stop_service_under_load_answers_every_request_sent(run, drain_s):
    """With a tiny `drain_s`, queued requests get ServiceStopping instead of a reply."""
    port = free_port()
    service = Service(service_module=load_module(TEST_SERVICES / "slow_echo.py"),
                      addresses=replyer_addresses("work", port), config={"delay_s": 0.002},
                      console_loglevel="WARNING", drain_s=drain_s)
    service.run_service()
    try:
        clients = start_load(port)
        started = time.monotonic()
        service.stop_service()
        assert time.monotonic() - started < 2.0 + 0.5  # SPEC §9: within 2 s (+ CI slack)
        assert_nothing_lost(clients)
        assert not port_is_listening(port)
    finally:
        service.stop_service()
