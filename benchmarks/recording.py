"""What recording a trace costs: requests/s of the echo example over real ZeroMQ.

The echo replyer runs as the README says (``service_framework -s examples/echo/replyer.py``,
a process of its own), once plain and once with ``--record``, alternately, for several
rounds. A client in this process sends requests over a DEALER socket with a window of
requests in flight: window 1 is a requester waiting for each reply (the echo example's
pattern, latency-bound), a larger window keeps the replyer busy all the time (its
throughput). Prints a table and, per window, the median ratio recording/plain of the
requests/s (the target is >= 0.8) and of the replyer's CPU time per request (from /proc,
on Linux: less sensitive than the rate to other load on the host). It never asserts:
numbers depend on the host.

    python benchmarks/recording.py [--rounds 5] [--requests 10000] [--windows 1 16]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import zmq

from service_framework.wire.envelope import decode_reply, encode_request
from service_framework_testing.ports import free_port

REPO = Path(__file__).resolve().parents[1]
ECHO = REPO / "examples" / "echo"
START_TIMEOUT_S = 20.0


def start_replyer(directory: Path, port: int, record: Path | None) -> subprocess.Popen:
    addresses = directory / "addresses.json"
    addresses.write_text(json.dumps(
        {"connections": {"in": {"echo": {"replyer": f"127.0.0.1:{port}"}}}}))
    command = [sys.executable, "-m", "service_framework", "-s", str(ECHO / "replyer.py"),
               "-a", str(addresses), "-c", str(ECHO / "replyer_config.json"), "-cl", "WARNING"]
    if record is not None:
        command += ["--record", str(record)]
    return subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def connect(context: zmq.Context, port: int, process: subprocess.Popen) -> zmq.Socket:
    """A DEALER that has had one reply: the replyer is up (waited on, with a deadline)."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        dealer = context.socket(zmq.DEALER)
        dealer.linger = 0
        dealer.connect(f"tcp://127.0.0.1:{port}")
        dealer.send(encode_request("warmup", {"text": "warm"}, "warmup", max_bytes=1 << 20))
        if dealer.poll(500):
            dealer.recv_multipart()
            return dealer
        dealer.close()
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the echo replyer did not start")


def measure(dealer: zmq.Socket, requests: int, window: int) -> float:
    """Requests/s with `window` requests in flight; every reply is decoded and checked."""
    body = encode_request("bench", {"text": "hello", "amount": Decimal("1.50"),
                                    "at": datetime(2030, 1, 1, tzinfo=timezone.utc)},
                          "bench", max_bytes=1 << 20)
    sent = received = 0
    started = time.perf_counter()
    while sent < min(window, requests):
        dealer.send(body)
        sent += 1
    while received < requests:
        reply = decode_reply(dealer.recv_multipart()[-1], max_bytes=1 << 20)
        if reply.error is not None:
            raise RuntimeError(f"error reply: {reply.error}")
        received += 1
        if sent < requests:
            dealer.send(body)
            sent += 1
    return requests / (time.perf_counter() - started)


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process so far (Linux), else None."""
    try:
        with open(f"/proc/{pid}/stat") as file:
            fields = file.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_once(context: zmq.Context, directory: Path, record: bool, requests: int,
             window: int) -> tuple[float, float | None, int]:
    """(requests/s, replyer CPU microseconds per request or None, trace lines)."""
    port = free_port()
    trace = directory / f"trace-{port}.jsonl" if record else None
    process = start_replyer(directory, port, trace)
    try:
        dealer = connect(context, port, process)
        try:
            before = cpu_seconds(process.pid)
            rate = measure(dealer, requests, window)
            after = cpu_seconds(process.pid)
        finally:
            dealer.close()
    finally:
        stop(process)
    cpu = None if before is None or after is None else (after - before) / requests * 1e6
    lines = 0
    if trace is not None:
        with open(trace, "rb") as file:
            lines = sum(1 for _ in file)
        os.unlink(trace)
    return rate, cpu, lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=10000)
    parser.add_argument("--windows", type=int, nargs="+", default=[1, 16],
                        help="requests in flight (1: wait for each reply)")
    options = parser.parse_args()
    context = zmq.Context()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for window in options.windows:
            for number in range(1, options.rounds + 1):
                # Alternate which goes first, so a slow warm-up does not favour one side.
                order = (False, True) if number % 2 else (True, False)
                results = {record: run_once(context, Path(tmp), record, options.requests,
                                            window) for record in order}
                (plain, plain_cpu, _), (recording, recording_cpu, lines) = (results[False],
                                                                            results[True])
                rows.append((window, number, plain, recording, plain_cpu, recording_cpu, lines))
    context.term()
    print(f"echo replyer over ZeroMQ (a process of its own), {options.requests} requests per "
          f"run, Python {sys.version.split()[0]}, {os.cpu_count()} CPU(s)")
    print(f"{'window':>6}  {'round':>5}  {'plain req/s':>12}  {'recording req/s':>16}  "
          f"{'ratio':>6}  {'plain CPU us/req':>16}  {'recording CPU us/req':>20}  "
          f"{'trace lines':>11}")

    def cpu(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.1f}"

    for window, number, plain, recording, plain_cpu, recording_cpu, lines in rows:
        print(f"{window:>6}  {number:>5}  {plain:>12,.0f}  {recording:>16,.0f}  "
              f"{recording / plain:>6.3f}  {cpu(plain_cpu):>16}  {cpu(recording_cpu):>20}  "
              f"{lines:>11,}")
    for window in options.windows:
        mine = [row for row in rows if row[0] == window]
        rate = statistics.median(row[3] / row[2] for row in mine)
        line = f"window {window:>3}: median ratio recording/plain {rate:.3f} (target >= 0.8)"
        if all(row[4] and row[5] for row in mine):
            cost = statistics.median(row[4] / row[5] for row in mine)
            line += f"; CPU per request plain/recording {cost:.3f}"
        print(line)


if __name__ == "__main__":
    main()
