"""Measurements over TCP loopback, each beside raw pyzmq; the peer in a process of its own.

(a) request/reply and (e) recording, (b) pub/sub, (f) idle CPU, (g) peak memory. The
peers are `_peers.py` roles; every wait has a deadline.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import zmq
from _common import (
    PAYLOAD,
    cpu_seconds,
    echo_requester,
    free_port,
    rate,
    raw_pack,
    raw_unpack,
    ticks_subscriber,
)

from service_framework import Service
from service_framework.wire.envelope import encode_request

PEERS = Path(__file__).resolve().parent / "_peers.py"
START_TIMEOUT_S = 30.0
RSS_LEVELS = 100_000


# -- processes -------------------------------------------------------------------------------
def start_peer(role: str, port: int, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, str(PEERS), role, str(port), *extra],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True)


def switch(process: subprocess.Popen, on: bool) -> None:
    """Resumes or pauses a publisher peer (commands keep their order in the pipe)."""
    process.stdin.write("1\n" if on else "0\n")
    process.stdin.flush()


def wait_ready(process: subprocess.Popen) -> None:
    """Waits (with a deadline) for the peer's "ready" line: its signal handlers are set."""
    import selectors

    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(START_TIMEOUT_S) or process.stdout.readline().strip() != "ready":
            raise RuntimeError(f"peer {process.args[2:]} did not start")


def stop_peer(process: subprocess.Popen) -> None:
    if process.stdin is not None:
        process.stdin.close()
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_for_replyer(context: zmq.Context, port: int, process: subprocess.Popen,
                     raw: bool) -> None:
    """Returns once the replyer on `port` has answered one request (deadline START_TIMEOUT_S)."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        socket = context.socket(zmq.REQ if raw else zmq.DEALER)
        socket.linger = 0
        socket.connect(f"tcp://127.0.0.1:{port}")
        socket.send(raw_pack(PAYLOAD) if raw else
                    encode_request("warmup", PAYLOAD, "warmup", max_bytes=1 << 20))
        answered = socket.poll(250)
        socket.close()
        if answered:
            return
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the replyer on port {port} did not start")


# -- (a) request/reply and (e) recording ---------------------------------------------------------
def request_reply(window_s: float, rounds: int, tmp: Path) -> dict[str, list[float]]:
    context = zmq.Context.instance()
    ports = {"raw": free_port(), "sf": free_port(), "sf+record": free_port()}
    peers = {"raw": start_peer("raw-rep", ports["raw"]),
             "sf": start_peer("sf-rep", ports["sf"]),
             "sf+record": start_peer("sf-rep", ports["sf+record"], str(tmp / "trace.jsonl"))}
    services: list[Service] = []
    results: dict[str, list[float]] = {name: [] for name in peers}
    try:
        for name, process in list(peers.items()):
            try:
                wait_for_replyer(context, ports[name], process, raw=name == "raw")
            except RuntimeError:
                if name != "sf+record":
                    raise
                stop_peer(peers.pop(name))  # recording does not work (yet): "pending"
                del results[name]
        req = context.socket(zmq.REQ)
        req.connect(f"tcp://127.0.0.1:{ports['raw']}")

        def raw_round_trip() -> None:
            req.send(raw_pack(PAYLOAD))
            raw_unpack(req.recv())

        senders = {"raw": raw_round_trip}
        for name in [name for name in ("sf", "sf+record") if name in peers]:
            service = Service(service_module=echo_requester(), console_loglevel="WARNING",
                              addresses={"connections": {"out": {"echo": {
                                  "requester": f"127.0.0.1:{ports[name]}"}}}})
            services.append(service.run_service())
            to_send = service.runtime.to_send
            senders[name] = lambda to_send=to_send: to_send("connection", "echo", PAYLOAD)
        for send in senders.values():  # warm up every path
            rate(send, 0.1)
        for number in range(rounds):
            order = list(senders) if number % 2 == 0 else list(reversed(senders))
            for name in order:
                results[name].append(rate(senders[name], window_s))
        req.close(0)
        results["idle_cpu"] = [idle_cpu(peers["sf"].pid, 2.0)]
    finally:
        for service in services:
            service.stop_service()
        for process in peers.values():
            stop_peer(process)
    trace = tmp / "trace.jsonl"
    results["trace_lines"] = [sum(1 for _ in trace.open("rb")) if trace.exists() else 0]
    return results


# -- (f) idle CPU ----------------------------------------------------------------------------
def idle_cpu(pid: int, seconds: float) -> float:
    """% of one core a process used over `seconds` of wall time, from /proc/<pid>/stat."""
    time.sleep(0.2)  # let the last request's work finish
    before, started = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return 100.0 * (cpu_seconds(pid) - before) / (time.monotonic() - started)


# -- (b) pub/sub -----------------------------------------------------------------------------
def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.01)


def pubsub(window_s: float, rounds: int, subscribers: int = 1) -> dict[str, list[float]]:
    """Messages/s delivered here, in all, to `subscribers` subscribers of one publisher
    publishing flat out there.

    Raw: that many pyzmq SUB sockets drained by one thread; framework: one service with that
    many subscriber connections (its loop thread does the work). Both publishers stay up,
    paused; each round resumes one, measures, pauses it again, so raw and framework rounds
    alternate under the same load of the host.
    """
    context = zmq.Context.instance()
    ports = {"raw": free_port(), "sf": free_port()}
    peers = {"raw": start_peer("raw-pub", ports["raw"]),
             "sf": start_peer("sf-pub", ports["sf"], str(subscribers))}
    poller = zmq.Poller()
    subs = []
    for _ in range(subscribers):
        sub = context.socket(zmq.SUB)
        sub.setsockopt(zmq.SUBSCRIBE, b"ticks")
        sub.connect(f"tcp://127.0.0.1:{ports['raw']}")
        poller.register(sub, zmq.POLLIN)
        subs.append(sub)
    seen = [0]

    def on_message(args, to_send, states, config):
        seen[0] += 1

    names = tuple(f"ticks{n}" for n in range(subscribers))
    endpoint = f"127.0.0.1:{ports['sf']}"
    service = Service(service_module=ticks_subscriber(on_message, names),
                      console_loglevel="ERROR",  # losses at the high-water mark are expected
                      addresses={"connections": {"in": {
                          name: {"subscriber": endpoint} for name in names}}})
    service.run_service()

    def raw_window(seconds: float) -> float:
        count, started = 0, time.perf_counter()
        deadline = started + seconds
        while (now := time.perf_counter()) < deadline:
            for sub, _ in poller.poll(100):
                recv = sub.recv_multipart
                try:
                    for _ in range(100):
                        topic, body = recv(zmq.NOBLOCK)
                        raw_unpack(body)
                        count += 1
                except zmq.Again:
                    pass
        return count / (now - started)

    def sf_window(seconds: float) -> float:
        before, started = seen[0], time.perf_counter()
        time.sleep(seconds)  # the subscriber's loop thread does the work
        return (seen[0] - before) / (time.perf_counter() - started)

    windows = {"raw": raw_window, "sf": sf_window}
    results: dict[str, list[float]] = {"raw": [], "sf": []}
    try:
        for name in ("raw", "sf"):  # up and delivering, with a deadline
            wait_ready(peers[name])
            switch(peers[name], True)
            wait_for(lambda name=name: (seen[0] > 100 * subscribers if name == "sf"
                                        else bool(poller.poll(100))), f"the {name} publisher")
            switch(peers[name], False)
        for number in range(rounds):
            for name in (("raw", "sf") if number % 2 == 0 else ("sf", "raw")):
                switch(peers[name], True)
                windows[name](0.2)  # steady state, and what queued while paused is gone
                results[name].append(windows[name](window_s))
                switch(peers[name], False)
    finally:
        for sub in subs:
            sub.close(0)
        for process in peers.values():
            stop_peer(process)
        service.stop_service()
    return results


# -- (g) memory -------------------------------------------------------------------------------
def peak_memory() -> dict:
    process = start_peer("rss", RSS_LEVELS)
    out, _ = process.communicate(timeout=120)
    return json.loads(out.strip().splitlines()[-1])
