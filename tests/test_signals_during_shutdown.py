"""A signal that reaches a stopping service changes nothing (SPEC §4, §16).

`timeout` sends TERM twice, an impatient user presses Ctrl-C again: whether the second
signal lands while the first one's handler runs, during the drain or after "stopped" was
logged (the interpreter still exiting), a clean stop still exits 0, the handler runs once,
and requests already received are answered. The services make each step of their stop
observable with marker files (tests/services/stop_observed.py), so every signal here is
sent at a known step, not at a moment hoped for.
"""

from __future__ import annotations

import contextlib
import json
import signal

import pytest
import zmq
from helpers import (
    TEST_SERVICES,
    catches_signal,
    endpoint,
    finish,
    free_port,
    port_is_listening,
    start_cli,
    wait_until,
)

from service_framework.wire.envelope import decode_reply, encode_request

REPLY_WAIT_MS = 5000


def start(tmp_path, service: str, *extra: str, replyer: str = "work"):
    """The service under the CLI, once it routes signals and listens; and its port."""
    port = free_port()
    addresses = tmp_path / "addresses.json"
    addresses.write_text(json.dumps({"connections": {"in": {replyer: {
        "replyer": endpoint(port)}}}}))
    process = start_cli("-s", TEST_SERVICES / service, "-a", addresses, "-cl", "INFO",
                        "--marker_dir", str(tmp_path), *extra)
    try:
        wait_until(lambda: catches_signal(process.pid, signal.SIGTERM)
                   or process.poll() is not None, 10, message="the signal handlers")
        assert process.poll() is None, finish(process)
        wait_until(lambda: port_is_listening(port), 5, message="the replyer to listen")
    except BaseException:
        process.kill()
        process.wait()
        raise
    return process, port


class Client:
    """A DEALER that sends requests `{'n': i}` and reads what came back."""

    def __init__(self, port: int) -> None:
        self.socket = zmq.Context.instance().socket(zmq.DEALER)
        self.socket.linger = 0
        self.socket.connect(f"tcp://{endpoint(port)}")

    def send(self, *numbers: int) -> None:
        for n in numbers:
            self.socket.send(encode_request(f"w{n}", {"n": n}, f"r{n}", max_bytes=1 << 20))

    def answers(self, count: int) -> dict:
        """rid -> result (or error type) of `count` answers; fails past the deadline."""
        found = {}
        while len(found) < count:
            assert self.socket.poll(REPLY_WAIT_MS), f"only {found} came back"
            reply = decode_reply(self.socket.recv_multipart()[-1], max_bytes=1 << 20)
            found[reply.rid] = reply.return_args if reply.error is None else reply.error["type"]
        return found

    def close(self) -> None:
        self.socket.close()


@contextlib.contextmanager
def running(tmp_path, service: str, *extra: str):
    """The service under the CLI and a client of its replyer; killed if still running."""
    process, port = start(tmp_path, service, *extra)
    client = Client(port)
    try:
        yield process, client
    finally:
        client.close()
        if process.poll() is None:
            process.kill()
            process.wait()


def signals_at_exit_then_exit_0(process, tmp_path) -> None:
    """Once the process waits at exit ("stopped" is logged), SIGTERM and SIGINT, then go:
    it still exits 0."""
    wait_until(lambda: (tmp_path / "exiting").exists() or process.poll() is not None, 10,
               message="the process to reach its exit")
    assert process.poll() is None, finish(process)
    process.send_signal(signal.SIGTERM)
    process.send_signal(signal.SIGINT)
    (tmp_path / "go").write_text("")
    code, out, err = finish(process)
    assert code == 0, err
    assert "stopped" in err and "Traceback" not in err, err


def test_signals_while_handling_draining_and_exiting_leave_exit_0(tmp_path):
    with running(tmp_path, "stop_observed.py", "--signals_in_drain", "2") as (process, client):
        client.send(0, 1)
        wait_until((tmp_path / "handling").exists, 10, message="request 0 in its handler")
        process.send_signal(signal.SIGTERM)  # request 1 is queued: the drain answers it
        wait_until((tmp_path / "draining").exists, 10, message="the drain to run request 1")
        process.send_signal(signal.SIGTERM)  # request 1 returns once both were seen
        process.send_signal(signal.SIGINT)
        assert client.answers(2) == {"r0": {"n": 0}, "r1": {"n": 1}}
        signals_at_exit_then_exit_0(process, tmp_path)
    assert (tmp_path / "signals").read_text() == "SIGTERM\n"  # the first signal's, once


@pytest.mark.parametrize("signals", [("SIGTERM", "SIGTERM"), ("SIGINT", "SIGINT"),
                                     ("SIGTERM", "SIGINT")], ids="+".join)
def test_two_signals_at_once_exit_0_and_run_one_handler(tmp_path, signals):
    """As `timeout` does: the second signal follows the first at once."""
    process, _ = start(tmp_path, "signals_service.py", replyer="ping")
    for name in signals:
        process.send_signal(getattr(signal, name))
    code, out, err = finish(process)
    assert code == 0, err
    assert "Traceback" not in err, err
    ran = [name for name in ("SIGTERM", "SIGINT") if (tmp_path / name).exists()]
    assert len(ran) == 1, ran


def test_a_signal_after_main_returned_does_not_break_into_the_stop(tmp_path):
    """Main mode: the signal arrives while the stop waits on a handler, then at exit."""
    with running(tmp_path, "main_returns_while_busy.py", "-m") as (process, client):
        client.send(0)
        wait_until((tmp_path / "stopping").exists, 10, message="the stop under way")
        process.send_signal(signal.SIGTERM)
        (tmp_path / "release").write_text("")
        assert client.answers(1) == {"r0": {"n": 0}}
        signals_at_exit_then_exit_0(process, tmp_path)
