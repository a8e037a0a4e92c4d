"""Replicas behind one requester: requests spread, a dead or stuck replica is failed over
within `timeout_s` with no error to the caller, a replica that returns gets traffic again;
a replyer's `dedupe` cache answers a repeated request id (issue 14, item 1)."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from collections import Counter

import pytest
import zmq
from helpers import (
    TEST_SERVICES,
    cli_command,
    endpoint,
    finish,
    free_port,
    make_module,
    wait_until,
)

from service_framework import Service
from service_framework.connections.dedupe import (
    MAX_BYTES,
    MAX_ENTRIES,
    MAX_RID_CHARS,
    ReplyCache,
)
from service_framework.connections.replicas import MAX_SUSPECT_S, ReplicaSet
from service_framework.wire.envelope import decode_reply, encode_request

TIMEOUT_S = 1.0
REPLICAS = ("a", "b", "c")


def replica_module(name: str, delay_s: float = 0.0):
    def on_echo(args, to_send, states, config):
        if delay_s:
            time.sleep(delay_s)  # virtual on the bus
        return {"text": args["text"], "replica": name}

    return make_module(f"replica_{name}", connection_models={"in": {"echo": {
        "connection_type": "replyer",
        "required_creation_arguments": {"on_new_request": on_echo},
        "required_arguments": {"text": str},
        "required_return_arguments": {"text": str, "replica": str}}}})


def client_module(timeout_s: float = TIMEOUT_S, retries: int = 0):
    """A service whose `ask` replyer asks the `echo` replicas and returns their answer."""
    def on_ask(args, to_send, states, config):
        reply = to_send("connection", "echo", {"text": args["text"]})
        return {"text": reply["text"], "replica": reply["replica"]}

    return make_module("replica_client", connection_models={
        "in": {"ask": {"connection_type": "replyer",
                       "required_creation_arguments": {"on_new_request": on_ask},
                       "required_arguments": {"text": str},
                       "required_return_arguments": {"text": str, "replica": str}}},
        "out": {"echo": {"connection_type": "requester",
                         "required_arguments": {"text": str},
                         "required_return_arguments": {"text": str, "replica": str},
                         "optional_return_arguments": {"runs": int},
                         "optional_creation_arguments": {"timeout_s": timeout_s,
                                                         "retries": retries}}}})


# -- the choice, alone ------------------------------------------------------------------------
def test_attempts_go_round_robin_and_skip_a_suspect_until_it_is_due():
    replicas = ReplicaSet(["a", "b", "c"], timeout_s=1.0)
    firsts = [replicas.order(0.0)[0].endpoint for _ in range(6)]
    assert firsts == ["a", "b", "c", "a", "b", "c"]
    b = replicas.replicas[1]
    assert replicas.failed(b, now=10.0) == 1.0
    assert [r.endpoint for r in replicas.order(10.5)] == ["a", "c", "b"]  # b last, not gone
    assert replicas.failed(b, now=11.0) == 2.0  # doubling while it keeps failing
    assert all(replicas.order(12.9)[0] is not b for _ in range(3))
    assert replicas.order(13.0)[0] is b or replicas.order(13.0)[0] is b  # due again: probed
    for _ in range(20):
        replicas.failed(b, now=20.0)
    assert b.suspect_until == 20.0 + MAX_SUSPECT_S
    replicas.answered(b)
    assert b.failures == 0 and b.suspect_until == float("-inf")


def test_a_suspect_replicas_turns_are_shared_by_every_healthy_one():
    replicas = ReplicaSet(["a", "b", "c", "d"], timeout_s=1.0)
    replicas.failed(replicas.replicas[1], now=0.0)  # b suspect until 1.0
    firsts = Counter(replicas.order(0.5)[0].endpoint for _ in range(300))
    assert firsts == {"a": 100, "c": 100, "d": 100}  # c took b's turns too: 100/200/100


def test_a_replica_dead_for_good_stays_suspect_at_most_the_cap():
    replicas = ReplicaSet(["a:1", "b:1"], timeout_s=1.0)
    for number in range(2000):  # 1,024 failures in a row overflowed the float once
        assert replicas.failed(replicas.replicas[1], float(number)) <= MAX_SUSPECT_S


def test_when_every_replica_is_suspect_they_are_still_tried_soonest_due_first():
    replicas = ReplicaSet(["a", "b"], timeout_s=1.0)
    a, b = replicas.replicas
    replicas.failed(a, now=0.0)
    replicas.failed(a, now=0.0)  # a: suspect until 2.0
    replicas.failed(b, now=0.0)  # b: until 1.0
    assert [r.endpoint for r in replicas.order(0.5)] == ["b", "a"]


# -- on the memory bus ----------------------------------------------------------------------
def bus_replicas(sf_bus, **client):
    addresses = {name: {"connections": {"in": {"echo": {"replyer": f"{name}:1"}}}}
                 for name in REPLICAS}
    for name in REPLICAS:
        sf_bus.service(replica_module(name), addresses=addresses[name])
    return sf_bus.service(client_module(**client), addresses={"connections": {
        "in": {"ask": {"replyer": "client:1"}},
        "out": {"echo": {"requester": [f"{name}:1" for name in REPLICAS]}}}})


def test_requests_spread_over_the_replicas_on_the_bus(sf_bus):
    client = bus_replicas(sf_bus)
    answers = Counter(client.request("ask", {"text": str(n)})["replica"] for n in range(30))
    assert answers == {"a": 10, "b": 10, "c": 10}


def test_a_crashed_replica_is_failed_over_within_timeout_and_gets_traffic_again(sf_bus):
    client = bus_replicas(sf_bus)
    sf_bus.crash("replica_b")
    waits, answers = [], Counter()
    for n in range(30):
        before = sf_bus.clock.monotonic()
        answers[client.request("ask", {"text": str(n)})["replica"]] += 1  # never an error
        waits.append(sf_bus.clock.monotonic() - before)
    assert answers["b"] == 0 and answers["a"] + answers["c"] == 30
    assert max(waits) <= TIMEOUT_S + 1e-9  # one attempt lost on b at most, per request
    timed_out = sum(1 for wait in waits if wait >= TIMEOUT_S)
    assert 1 <= timed_out <= 4  # b is probed with backoff, not on every request
    sf_bus.restart("replica_b")
    sf_bus.advance(MAX_SUSPECT_S)  # past any suspicion: b is probed, answers, is back
    answers = Counter(client.request("ask", {"text": str(n)})["replica"] for n in range(30))
    assert answers["b"] >= 9


def test_with_every_replica_down_the_caller_gets_one_timeout_naming_them(sf_bus):
    client = bus_replicas(sf_bus)
    for name in REPLICAS:
        sf_bus.crash(f"replica_{name}")
    before = sf_bus.clock.monotonic()
    with pytest.raises(Exception) as error:
        client.request("ask", {"text": "x"})
    assert "RequestTimeout" in repr(error.value)
    # each attempt's outcome, by replica: a refusal or a full queue is not "no reply"
    assert str(error.value).endswith(": no reply in 3 attempt(s): "
                                     "tcp://a:1: no reply within 1s; tcp://b:1: no reply "
                                     "within 1s; tcp://c:1: no reply within 1s"), error.value
    assert sf_bus.clock.monotonic() - before == pytest.approx(3 * TIMEOUT_S)


def test_a_stuck_replica_is_failed_over_on_the_bus(sf_bus):
    client = bus_replicas(sf_bus)
    sf_bus.faults.drop(link=("replica_c", "replica_client"))  # up, but mute
    answers = Counter(client.request("ask", {"text": str(n)})["replica"] for n in range(12))
    assert answers["c"] == 0 and sum(answers.values()) == 12


def test_a_crashed_replica_doubles_no_other_replicas_share_on_the_bus(sf_bus):
    client = bus_replicas(sf_bus)
    sf_bus.crash("replica_b")
    answers = Counter(client.request("ask", {"text": str(n)})["replica"] for n in range(300))
    assert answers == {"a": 150, "c": 150}


def test_a_reply_later_than_the_attempt_deadline_is_a_timeout_on_the_bus(sf_bus):
    # Over ZeroMQ the attempt ends at timeout_s and the reply that comes later is dropped;
    # the bus ran the slow handler inline and took its reply 0.5 s past the deadline.
    sf_bus.service(replica_module("a", delay_s=1.5 * TIMEOUT_S),
                   addresses={"connections": {"in": {"echo": {"replyer": "a:1"}}}})
    sf_bus.service(replica_module("b"),
                   addresses={"connections": {"in": {"echo": {"replyer": "b:1"}}}})
    client = sf_bus.service(client_module(), addresses={"connections": {
        "in": {"ask": {"replyer": "client:1"}}, "out": {"echo": {"requester": ["a:1", "b:1"]}}}})
    assert client.request("ask", {"text": "x"})["replica"] == "b"
    assert client.runtime.counters["request_attempts_timed_out"] == 1


def test_a_reply_in_time_stays_in_time_while_another_service_sleeps_on_the_bus(sf_bus):
    # While the client waits for b, a third service sleeps 2 s in virtual time; the bus
    # serves b meanwhile and b's reply arrives at once: it is no timeout, though the wait
    # ends past its deadline.
    def on_tick(args, to_send, states, config):
        time.sleep(2 * TIMEOUT_S)  # virtual time: the bus moves its clock, nobody waits

    sleeper = make_module("sleeper", connection_models={"in": {"ticks": {
        "connection_type": "subscriber", "required_creation_arguments": {"on_new_message": on_tick},
        "required_arguments": {"n": int}}}})

    def on_ask(args, to_send, states, config):
        to_send("connection", "ticks", {"n": 1})  # the sleeper now has input too
        return to_send("connection", "echo", {"text": args["text"]})

    client = make_module("replica_client", connection_models={
        "in": {"ask": {"connection_type": "replyer",
                       "required_creation_arguments": {"on_new_request": on_ask},
                       "required_arguments": {"text": str},
                       "required_return_arguments": {"text": str, "replica": str}}},
        "out": {"ticks": {"connection_type": "publisher", "required_arguments": {"n": int}},
                "echo": {"connection_type": "requester", "required_arguments": {"text": str},
                         "required_return_arguments": {"text": str, "replica": str},
                         "optional_creation_arguments": {"timeout_s": TIMEOUT_S}}}})
    sf_bus.service(replica_module("b"),
                   addresses={"connections": {"in": {"echo": {"replyer": "b:1"}}}})
    sf_bus.service(sleeper, addresses={"connections": {"in": {"ticks": {
        "subscriber": "client:2"}}}})
    asking = sf_bus.service(client, addresses={"connections": {
        "in": {"ask": {"replyer": "client:1"}},
        "out": {"ticks": {"publisher": "client:2"}, "echo": {"requester": "b:1"}}}})
    replies = [asking.request("ask", {"text": str(n)}) for n in range(8)]
    assert [reply["replica"] for reply in replies] == ["b"] * 8
    assert asking.runtime.counters.get("request_attempts_timed_out", 0) == 0


# -- the dedupe cache -------------------------------------------------------------------------
def test_the_cache_answers_only_the_same_id_with_the_same_bytes_and_is_bounded():
    cache = ReplyCache(2)
    cache.put("r1", b"request one", b"reply one")
    assert cache.get("r1", b"request one") == b"reply one"
    assert cache.get("r1", b"another request under the same id") is None
    assert cache.get(None, b"request one") is None
    cache.put("r2", b"two", b"reply two")
    cache.put("r3", b"three", b"reply three")
    assert len(cache) == 2 and cache.get("r1", b"request one") is None  # oldest evicted
    assert ReplyCache(10 ** 9).max_entries == MAX_ENTRIES


def test_the_cache_keeps_no_long_request_ids_and_counts_the_ids_it_keeps():
    """A peer chooses the ids: 70,000 ids of 1,000 characters with empty replies were 70 MB
    that a bound on replies alone did not see."""
    cache = ReplyCache(MAX_ENTRIES)
    for number in range(70_000):
        cache.put(f"{number:0>1000}", b"", b"")
    assert len(cache) == 0
    cache.put("r" * MAX_RID_CHARS, b"body", b"")
    assert cache.get("r" * MAX_RID_CHARS, b"body") == b"" and cache.bytes > MAX_RID_CHARS
    assert cache.bytes <= MAX_BYTES


def test_the_cache_counts_what_it_holds_and_keeps_no_wide_character_ids():
    import tracemalloc

    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        cache = ReplyCache(MAX_ENTRIES)
        for number in range(20_000):
            cache.put(f"1a2b3c4d-{number}", b"request %d" % number, b"%d" % number)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert held <= cache.bytes * 1.1  # the bound is on memory, not on a count of characters
    wide = ReplyCache(MAX_ENTRIES)  # a character of these ids takes 4 bytes, not 1
    for number in range(1_000):
        wide.put(f"{number:\U0001F600>{MAX_RID_CHARS}}", b"body", b"")
    assert len(wide) == 0


def replica_process(tmp_path, name: str, port: int, **config) -> subprocess.Popen:
    addresses = tmp_path / f"{name}_addresses.json"
    addresses.write_text(json.dumps({"connections": {"in": {"echo": {
        "replyer": endpoint(port)}}}}))
    config_path = tmp_path / f"{name}_config.json"
    config_path.write_text(json.dumps({"name": name, **config}))
    log = open(tmp_path / f"{name}.log", "a")
    return subprocess.Popen(cli_command("-s", TEST_SERVICES / "named_replica.py", "-a", addresses,
                                        "-c", config_path), stdout=log, stderr=log)


def raw_request(socket: zmq.Socket, rid: str, text: str, timeout_ms: int = 5000) -> dict:
    socket.send(encode_request("w", {"text": text}, rid, max_bytes=1 << 20))
    assert socket.poll(timeout_ms), "no reply"
    return decode_reply(socket.recv(), max_bytes=1 << 20).return_args


def stop(process: subprocess.Popen) -> None:
    finish(process, send=signal.SIGTERM)


def test_a_replyer_with_dedupe_answers_a_repeated_id_without_running_again(tmp_path):
    port = free_port()
    process = replica_process(tmp_path, "d", port, dedupe=100)
    socket = zmq.Context.instance().socket(zmq.DEALER)
    socket.linger = 0
    socket.connect(f"tcp://{endpoint(port)}")
    try:
        first = raw_request(socket, "rid-1", "once", timeout_ms=15000)
        assert first["runs"] == 1
        assert raw_request(socket, "rid-1", "once") == first  # a retry: from the cache
        assert raw_request(socket, "rid-1", "other args")["runs"] == 2  # not a repeat
        assert raw_request(socket, "rid-2", "once")["runs"] == 3
    finally:
        socket.close(0)
        stop(process)


# -- over ZeroMQ ------------------------------------------------------------------------------
@pytest.fixture
def zmq_replicas(tmp_path):
    ports = {name: free_port() for name in REPLICAS}
    processes = {name: replica_process(tmp_path, name, port) for name, port in ports.items()}
    client = Service(service_module=client_module(), console_loglevel="ERROR",
                     addresses={"connections": {
                         "in": {"ask": {"replyer": endpoint(free_port())}},
                         "out": {"echo": {
                             "requester": [endpoint(ports[name]) for name in REPLICAS]}}}})
    try:
        client.run_service()
        yield client.runtime.to_send, ports, processes
    finally:
        try:
            client.stop_service()
        finally:
            for process in processes.values():
                stop(process)


def ask_many(ask, count: int) -> Counter:
    return Counter(ask("connection", "echo", {"text": str(n)})["replica"]
                   for n in range(count))


def test_requests_spread_over_replicas_and_survive_a_killed_one_over_zmq(zmq_replicas,
                                                                          tmp_path):
    ask, ports, processes = zmq_replicas
    wait_until(lambda: len(ask_many(ask, 6)) == 3, timeout=30,
               message="all three replicas answering")
    assert ask_many(ask, 30) == {"a": 10, "b": 10, "c": 10}
    processes["b"].kill()
    processes["b"].wait()
    slowest, answers = 0.0, Counter()
    for n in range(30):
        started = time.monotonic()
        answers[ask("connection", "echo", {"text": str(n)})["replica"]] += 1  # no error
        slowest = max(slowest, time.monotonic() - started)
    assert answers["b"] == 0 and answers["a"] + answers["c"] == 30
    assert slowest < TIMEOUT_S + 0.5  # one lost attempt at most, then the next replica
    processes["b"] = replica_process(tmp_path, "b", ports["b"])  # back, on the same port
    wait_until(lambda: ask_many(ask, 3)["b"] > 0, timeout=MAX_SUSPECT_S + 20,
               message="the returned replica getting traffic again")


def test_a_replica_stopping_gracefully_is_failed_over_with_no_error(zmq_replicas, tmp_path):
    """SIGTERM: the replica answers what it took and refuses the rest with ServiceStopping,
    without running them. The requester sends a refused request to the next replica: a
    rolling restart costs the callers nothing."""
    ask, ports, processes = zmq_replicas
    client_runtime = ask.__self__  # the fixture gives the client runtime's to_send

    def refused() -> int:
        return client_runtime.counters.get("refused_by_a_stopping_replica", 0)

    for _ in range(5):  # b refuses what reaches it while it drains (50 ms after the last)
        wait_until(lambda: len(ask_many(ask, 6)) == 3, timeout=30,
                   message="all three replicas answering")
        processes["b"].send_signal(signal.SIGTERM)
        asked = 0
        while processes["b"].poll() is None and asked < 20_000:
            ask("connection", "echo", {"text": str(asked)})  # never an error
            asked += 1
        assert processes["b"].wait(10) == 0
        if refused():
            break
        # a pause of this process longer than b's drain: no request reached b; again
        processes["b"] = replica_process(tmp_path, "b", ports["b"])
    assert refused() >= 1, "b never refused a request while it stopped"
    assert ask_many(ask, 30)["b"] == 0


def test_a_hung_replica_is_failed_over_within_timeout_over_zmq(tmp_path):
    ports = {"ok": free_port(), "hung": free_port()}
    processes = {"ok": replica_process(tmp_path, "ok", ports["ok"]),
                 "hung": replica_process(tmp_path, "hung", ports["hung"], hang=True)}
    client = Service(service_module=client_module(), console_loglevel="ERROR",
                     addresses={"connections": {
                         "in": {"ask": {"replyer": endpoint(free_port())}},
                         "out": {"echo": {"requester": [endpoint(ports["hung"]),
                                                        endpoint(ports["ok"])]}}}})
    try:
        client.run_service()
        ask = client.runtime.to_send
        wait_until(lambda: ask_many(ask, 1)["ok"] == 1, timeout=30, message="a replica up")
        started = time.monotonic()
        assert ask_many(ask, 10) == {"ok": 10}  # the hung one costs one attempt, once
        assert time.monotonic() - started < 2 * TIMEOUT_S + 2.0
    finally:
        client.stop_service()
        processes["hung"].kill()
        processes["hung"].wait()
        stop(processes["ok"])


def asking_in_main(name: str, endpoints: list[str], **creation):
    """A main-mode service whose main asks `echo` once (its error kept in `outcome`),
    started, with main inside the request (or about to be)."""
    outcome: dict = {}
    asking = threading.Event()

    def main(to_send, config):
        asking.set()
        try:
            to_send("connection", "echo", {"text": "x"})
        except Exception as error:
            outcome["error"] = error

    module = make_module(name, main=main, connection_models={"out": {"echo": {
        "connection_type": "requester", "required_arguments": {"text": str},
        "optional_creation_arguments": creation}}})
    service = Service(service_module=module, console_loglevel="CRITICAL", addresses={
        "connections": {"out": {"echo": {"requester": endpoints}}}})
    service.run_service_as_main()
    assert asking.wait(10)
    return service, outcome


def test_stopping_the_service_ends_a_failover_in_main_at_once():
    """main is failing over across three replicas nobody runs when the service is asked to
    stop: the request ends with ServiceStopping, not three timeouts later."""
    service, outcome = asking_in_main("stopped_while_asking",
                                      [endpoint(free_port()) for _ in range(3)], timeout_s=5.0)
    stopped_at = time.monotonic()
    service.stop_service()
    wait_until(lambda: "error" in outcome, timeout=10, message="main's request ending")
    assert type(outcome["error"]).__name__ == "ServiceStopping", outcome["error"]
    assert time.monotonic() - stopped_at < 2.0  # was 15 s: every replica's timeout


def test_the_stop_never_wakes_a_poller_the_sender_already_closed():
    """close() wakes the sending thread's poller; that thread closes the poller once its
    request ends. A wake after the close would write into whatever file took the pipe's
    descriptor: the two are serialised (the wake is held here until the sender tries to
    close, or for 1 s)."""
    # short attempts, many of them: the sender's poll ends while the wake is held back
    service, _ = asking_in_main("woken_while_closing", [endpoint(free_port())],
                                timeout_s=0.2, retries=1000)
    requester = service.runtime.out_connections["echo"]
    wait_until(lambda: requester.poller is not None, message="the request's poller")
    poller = requester.poller
    close, wake = poller.close, poller.wake
    closing, seen = threading.Event(), {}

    def close_noticed():
        closing.set()
        close()

    def slow_wake():
        requester.closed = True  # the sender's attempt ends, then it closes the poller
        closing.wait(1.0)
        seen["closed_when_woken"] = poller._closed
        wake()

    poller.close, poller.wake = close_noticed, slow_wake
    service.stop_service()
    wait_until(lambda: poller._closed, timeout=10, message="the sender closing its poller")
    assert seen == {"closed_when_woken": False}
