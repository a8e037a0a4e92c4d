"""An out side that misbehaves cannot exhaust or storm an in side (issue 11, items 3-5).

The out side here is hostile and raw: a pyzmq PUB for updates and heartbeats and a ROUTER
for snapshot requests, speaking `states.protocol`'s bytes. The consumer is the CLI running
`tests/services/book_follower.py` (one delta in-state), so its memory is its own process's
and SIGTERM is a real signal.
"""

from __future__ import annotations

import signal
import subprocess
import time

import msgpack
import pytest
import zmq
from helpers import (
    TEST_SERVICES,
    cli_command,
    cpu_seconds,
    endpoint,
    free_port,
    rss_mib,
    wait_until,
)

from service_framework.states import protocol

EPOCH = "hostile-epoch"


class HostileOutSide:
    """Binds the publisher and replyer of state `book`; answers snapshots only when told."""

    def __init__(self) -> None:
        context = zmq.Context.instance()
        self.pub_port, self.rep_port = free_port(), free_port()
        self.pub = context.socket(zmq.PUB)
        self.pub.setsockopt(zmq.SNDHWM, 0)  # the attack: everything reaches the consumer
        self.pub.linger = 0
        self.pub.bind(f"tcp://{endpoint(self.pub_port)}")
        self.router = context.socket(zmq.ROUTER)
        self.router.linger = 0
        self.router.bind(f"tcp://{endpoint(self.rep_port)}")
        self.requests: list[float] = []  # when each snapshot request arrived

    def addresses(self, directory) -> str:
        path = directory / "addresses.json"
        path.write_text(msgpack.packb(None) and
                        '{"states": {"in": {"book": {"subscriber": "%s", "requester": "%s"}}}}'
                        % (endpoint(self.pub_port), endpoint(self.rep_port)))
        return str(path)

    def publish(self, body: bytes) -> None:
        self.pub.send_multipart([b"", body])

    def read_requests(self, answer_seq: int | None = None, value: dict | None = None) -> int:
        """Reads pending snapshot requests; answers them when `answer_seq` is given."""
        count = 0
        while self.router.poll(0):
            identity, *_, body = self.router.recv_multipart()
            count += 1
            self.requests.append(time.monotonic())
            if answer_seq is not None:
                rid = protocol.decode_snapshot_request(body, max_bytes=1 << 20).rid
                self.router.send_multipart([identity, protocol.encode_snapshot(
                    rid, EPOCH, answer_seq, value or {})])
        return count

    def answer_for(self, seconds: float, seq: int, value: dict) -> None:
        """Answers every snapshot request for `seconds` (an observation window: what is
        counted is how many requests come in it)."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if self.router.poll(min(left, 0.05) * 1000):
                self.read_requests(answer_seq=seq, value=value)

    def close(self) -> None:
        self.pub.close()
        self.router.close()


@pytest.fixture
def out_side():
    side = HostileOutSide()
    yield side
    side.close()


def start_consumer(out_side: HostileOutSide, tmp_path, *extras: str) -> subprocess.Popen:
    log = open(tmp_path / "consumer.log", "w")  # a file: a pipe nobody reads would block it
    process = subprocess.Popen(
        cli_command("-s", TEST_SERVICES / "book_follower.py", "-a", out_side.addresses(tmp_path),
                    *extras), stdout=log, stderr=subprocess.STDOUT)
    log.close()
    wait_until(lambda: out_side.router.poll(0) or process.poll() is not None, timeout=15,
               message="the consumer's first snapshot request")
    assert process.poll() is None, (tmp_path / "consumer.log").read_text()
    return process


def synced(out_side: HostileOutSide, tmp_path, seq: int) -> None:
    """Answers the consumer's first request; returns once it says it is in sync."""
    out_side.read_requests(answer_seq=seq, value={"levels": {"a": 1}})
    wait_until(lambda: "in sync (epoch" in (tmp_path / "consumer.log").read_text(),
               timeout=10, message=f"the consumer in sync at seq {seq}")


def stop(process: subprocess.Popen, timeout: float) -> float:
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=timeout)
    return time.monotonic() - started


def update_body(seq: int, args_packed: bytes) -> bytes:
    """An update whose args were packed once (a big delta costs one encode, not 200)."""
    head = msgpack.packb({"v": protocol.VERSION, "epoch": EPOCH, "seq": seq,
                          "is_snapshot": False, "workflow_id": None})
    assert head[0] == 0x85  # a fixmap of 5: one more field makes it 6
    return bytes([0x86]) + head[1:] + msgpack.packb("args") + args_packed


def test_buffered_deltas_are_bounded_in_bytes_and_sigterm_is_honoured(out_side, tmp_path):
    # ~0.9 MB encoded, 2-3 times that decoded: what a consumer buffered (without a bound)
    # while it waited for a snapshot that never comes. Sent at a pace the consumer keeps
    # up with: what is measured is the in-state's buffer, not libzmq's receive queue
    # (bounded by the state's `hwm` in messages; see the README's Limits).
    notes = {f"{i:06d}": "x" * 100 for i in range(8_500)}
    args = msgpack.packb({"notes": notes})
    assert 0.8e6 < len(args) < 1.0e6
    consumer = start_consumer(out_side, tmp_path)
    try:
        baseline = rss_mib(consumer.pid)
        for seq in range(1, 201):
            out_side.publish(update_body(seq, args))
            out_side.read_requests()  # never answered
            time.sleep(0.01)  # pacing, not waiting for a condition: see above
        peak = 0.0

        def settled() -> bool:
            nonlocal peak
            peak = max(peak, rss_mib(consumer.pid, peak=True))
            return "dropped them" in (tmp_path / "consumer.log").read_text()

        wait_until(settled, timeout=15, message="the buffer dropped past max_buffer_bytes")
        for seq in range(201, 221):  # the out side keeps sending while the signal comes
            out_side.publish(update_body(seq, args))
        assert stop(consumer, timeout=5) < 2.0  # the drain window (1 s) and exit
        assert consumer.returncode == 0
    finally:
        if consumer.poll() is None:
            consumer.kill()
    assert peak - baseline < 150, f"grew {peak - baseline:.0f} MiB"


def test_a_delta_far_ahead_causes_one_resync_not_a_storm(out_side, tmp_path):
    consumer = start_consumer(out_side, tmp_path)
    try:
        synced(out_side, tmp_path, seq=5)
        out_side.requests.clear()
        bogus = protocol.encode_update(EPOCH, 5 + 10**12, False, {"note": "far ahead"})
        out_side.publish(bogus)
        # The out side answers every request at once: the in side is synced at once, and
        # the bogus delta is dropped instead of asking again and again.
        out_side.answer_for(3, seq=5, value={"levels": {"a": 1}})
        assert 1 <= len(out_side.requests) <= 2, len(out_side.requests)
        # A stubborn gap (the out side never gets past seq 5 in its snapshots, updates go
        # on from 7): requests back off, at most 20 in 10 s — here measured over 4 s.
        out_side.requests.clear()
        out_side.publish(protocol.encode_update(EPOCH, 7, False, {"note": "gap"}))
        out_side.answer_for(4, seq=5, value={"levels": {"a": 1}})
        assert len(out_side.requests) <= 10, len(out_side.requests)
        out_side.read_requests(answer_seq=7, value={"levels": {"a": 2}})
    finally:
        stop(consumer, timeout=5)


def test_a_tiny_announced_heartbeat_is_clamped_with_one_warning(out_side, tmp_path):
    consumer = start_consumer(out_side, tmp_path)
    try:
        synced(out_side, tmp_path, seq=1)
        out_side.requests.clear()
        cpu_before, started = cpu_seconds(consumer.pid), time.monotonic()
        for _ in range(100):  # heartbeats announcing 1 µs, 20 ms apart, for 2 s
            out_side.publish(protocol.encode_heartbeat(EPOCH, 1, 1e-6))
            out_side.answer_for(0.02, seq=1, value={"levels": {"a": 1}})
        cpu = (cpu_seconds(consumer.pid) - cpu_before) / (time.monotonic() - started)
        assert cpu < 0.3, f"{cpu:.0%} of a core"
        assert len(out_side.requests) <= 5, len(out_side.requests)
    finally:
        stop(consumer, timeout=5)
    log = (tmp_path / "consumer.log").read_text()
    assert log.count("heartbeat_s=1e-06") == 1, log
