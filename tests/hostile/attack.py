"""What the hostile-peer tests share: a service under attack, run by the CLI as a process
(its memory is its own, its signals real, its log a file that nobody has to drain)."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import zmq
from helpers import EXAMPLES, cli_command, endpoint, free_port, wait_until

from service_framework.wire import codec
from service_framework.wire.envelope import decode_reply, encode_request


class Target:
    """A service started from the CLI with `-a` rewritten to a free port on 127.0.0.1."""

    def __init__(self, tmp_path: Path, service: Path, addresses: dict, *extras: str) -> None:
        self.log_path = tmp_path / f"{service.stem}.log"
        path = tmp_path / f"{service.stem}_addresses.json"
        path.write_text(json.dumps(addresses))
        self.out_path = tmp_path / f"{service.stem}.out"
        with open(self.log_path, "w") as log, open(self.out_path, "w") as out:
            self.process = subprocess.Popen(cli_command("-s", service, "-a", path, *extras),
                                            stdout=out, stderr=log)

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        """What the service logged (stderr; its prints go to `out_path`)."""
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 10.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise AssertionError(f"no exit within {timeout:g}s after SIGTERM\n{self.log()}") \
                from None


def echo_replyer(tmp_path: Path, *extras: str) -> tuple[Target, int]:
    """examples/echo/replyer.py on a free port; returns when it answers."""
    port = free_port()
    target = Target(tmp_path, EXAMPLES / "echo" / "replyer.py",
                    {"connections": {"in": {"echo": {"replyer": endpoint(port)}}}}, *extras)
    client = Dealer(port)
    try:
        wait_until(lambda: client.echo("ready", timeout_ms=200) or target.process.poll(),
                   timeout=15, message="the echo replyer answering")
    finally:
        client.close()
    assert target.process.poll() is None, target.log()
    return target, port


class Dealer:
    """A raw client: sends what it likes, reads (or never reads) the answers."""

    def __init__(self, port: int, **options: int) -> None:
        self.socket = zmq.Context.instance().socket(zmq.DEALER)
        self.socket.linger = 0
        for name, value in options.items():
            self.socket.setsockopt(getattr(zmq, name), value)
        self.socket.connect(f"tcp://{endpoint(port)}")
        self.sent = 0

    def send_echo(self, text: str, rid: str | None = None) -> None:
        self.sent += 1
        self.socket.send(encode_request("w", {"text": text}, rid or f"r{self.sent}",
                                        max_bytes=1 << 30))

    def echo(self, text: str, timeout_ms: int = 5000) -> dict | None:
        """One round trip; the reply's return_args, or None when no answer came in time."""
        rid = f"echo-{self.sent}"
        self.send_echo(text, rid)
        while self.socket.poll(timeout_ms):
            reply = decode_reply(self.socket.recv_multipart()[-1],
                                 max_bytes=codec.DEFAULT_MAX_MESSAGE_BYTES)
            if reply.rid == rid:
                return reply.return_args if reply.error is None else {"error": reply.error}
        return None

    def close(self) -> None:
        self.socket.close()
