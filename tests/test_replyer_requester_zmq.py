"""Replyer and requester on real ZeroMQ sockets (127.0.0.1, free ports)."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pytest
import zmq
from helpers import (
    ask,
    endpoint,
    free_port,
    make_module,
    replyer_addresses,
    requester_addresses,
)

from service_framework import RemoteError, RequestTimeout
from service_framework.wire.codec import DEFAULT_MAX_MESSAGE_BYTES
from service_framework.wire.envelope import decode_request, encode_reply


def calc_replyer(*, on_call=None) -> Any:
    """`calc` doubles x; x == 13 makes the handler raise."""
    calls: list[dict] = []

    def on_new_request(args, to_send, states, config):
        calls.append(args)
        if on_call is not None:
            on_call(args, len(calls))
        if args["x"] == 13:
            raise RuntimeError("unlucky 13")
        return {"y": args["x"] * 2}

    module = make_module("calc_replyer", connection_models={"in": {"calc": {
        "connection_type": "replyer",
        "required_creation_arguments": {"on_new_request": on_new_request},
        "required_arguments": {"x": int},
        "required_return_arguments": {"y": int},
    }}})
    module.calls = calls
    return module


def calc_requester(*, timeout_s: float = 2.0, retries: int = 0) -> Any:
    """A requester looser than the replyer, so that bad requests can reach it."""
    return make_module("calc_requester", connection_models={"out": {"calc": {
        "connection_type": "requester",
        "optional_arguments": {"x": Any, "extra": Any},
        "required_return_arguments": {"y": int},
        "optional_creation_arguments": {"timeout_s": timeout_s, "retries": retries},
    }}})


@pytest.fixture
def calc(services):
    """A running replyer and a requester to it; returns (replyer module, requester service)."""
    port = free_port()
    replyer = calc_replyer()
    services.start(replyer, replyer_addresses("calc", port))
    requester = services.start(calc_requester(), requester_addresses("calc", port))
    return replyer, requester


def test_request_gets_the_handler_reply(calc):
    _, requester = calc
    assert ask(requester, "calc", {"x": 21}) == {"y": 42}


def test_wrong_type_gets_an_argument_error_reply_naming_the_key(calc):
    replyer, requester = calc
    with pytest.raises(RemoteError) as caught:
        ask(requester, "calc", {"x": "twenty"})
    assert caught.value.remote_type == "ArgumentError"
    assert "'x'" in caught.value.remote_message
    assert "int" in caught.value.remote_message
    assert replyer.calls == []  # the handler never saw the bad request
    assert ask(requester, "calc", {"x": 1}) == {"y": 2}


def test_unknown_key_gets_an_argument_error_reply(calc):
    _, requester = calc
    with pytest.raises(RemoteError) as caught:
        ask(requester, "calc", {"x": 1, "extra": "?"})
    assert caught.value.remote_type == "ArgumentError"
    assert "'extra'" in caught.value.remote_message
    assert ask(requester, "calc", {"x": 2}) == {"y": 4}


def test_missing_key_gets_an_argument_error_reply(calc):
    _, requester = calc
    with pytest.raises(RemoteError) as caught:
        ask(requester, "calc", {})
    assert caught.value.remote_type == "ArgumentError"
    assert "'x'" in caught.value.remote_message
    assert ask(requester, "calc", {"x": 3}) == {"y": 6}


def test_handler_exception_gets_an_error_reply_and_the_replyer_goes_on(calc):
    _, requester = calc
    with pytest.raises(RemoteError) as caught:
        ask(requester, "calc", {"x": 13})
    assert caught.value.remote_type == "RuntimeError"
    assert caught.value.remote_message == "unlucky 13"
    assert ask(requester, "calc", {"x": 4}) == {"y": 8}


def test_bad_return_gets_an_error_reply(services):
    port = free_port()
    module = make_module("bad_return", connection_models={"in": {"calc": {
        "connection_type": "replyer",
        "required_creation_arguments": {"on_new_request": lambda a, t, s, c: {"y": "oops"}},
        "required_arguments": {"x": int},
        "required_return_arguments": {"y": int},
    }}})
    services.start(module, replyer_addresses("calc", port))
    requester = services.start(calc_requester(), requester_addresses("calc", port))
    with pytest.raises(RemoteError) as caught:
        ask(requester, "calc", {"x": 1})
    assert caught.value.remote_type == "ArgumentError"
    assert "'y'" in caught.value.remote_message


def test_concurrent_requesters_are_all_served(services):
    port = free_port()
    services.start(calc_replyer(), replyer_addresses("calc", port))
    requesters = [services.start(calc_requester(), requester_addresses("calc", port))
                  for _ in range(6)]
    results: dict[int, list] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(len(requesters))

    def client(number: int, requester) -> None:
        try:
            start.wait(5)
            results[number] = [ask(requester, "calc", {"x": number * 100 + i + 1000})["y"]
                               for i in range(25)]
        except BaseException as error:  # reported by the main thread
            errors.append(error)

    threads = [threading.Thread(target=client, args=(n, r)) for n, r in enumerate(requesters)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(15)
    assert not errors
    assert results == {n: [(n * 100 + i + 1000) * 2 for i in range(25)] for n in range(6)}


def test_dead_endpoint_times_out_then_works_once_a_replyer_is_up(services):
    port = free_port()
    requester = services.start(calc_requester(timeout_s=0.4), requester_addresses("calc", port))
    started = time.monotonic()
    with pytest.raises(RequestTimeout):
        ask(requester, "calc", {"x": 1})
    elapsed = time.monotonic() - started
    assert 0.4 <= elapsed < 0.4 + 0.5
    services.start(calc_replyer(), replyer_addresses("calc", port))
    assert ask(requester, "calc", {"x": 5}) == {"y": 10}


def test_after_a_timeout_the_next_call_gets_its_own_reply_not_the_late_one(services):
    port = free_port()
    release = threading.Event()

    def slow_first_time(args, number):
        if number == 1:
            release.wait(5)

    replyer = calc_replyer(on_call=slow_first_time)
    services.start(replyer, replyer_addresses("calc", port))
    requester = services.start(calc_requester(timeout_s=0.3), requester_addresses("calc", port))
    try:
        with pytest.raises(RequestTimeout):
            ask(requester, "calc", {"x": 1})
    finally:
        release.set()  # the handler now answers the abandoned request, late
    assert ask(requester, "calc", {"x": 7}) == {"y": 14}
    assert ask(requester, "calc", {"x": 8}) == {"y": 16}
    assert [call["x"] for call in replyer.calls] == [1, 7, 8]


class _TimeoutWarnings(logging.Handler):
    """Sets an event when the requester logs that an attempt got no reply."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.seen = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if "no reply within" in record.getMessage():
            self.seen.set()


def test_lazy_pirate_retry_succeeds_when_the_first_attempt_is_slow(services):
    port = free_port()
    attempt_timed_out = _TimeoutWarnings()

    def slow_until_the_requester_retries(args, number):
        if number == 1:
            assert attempt_timed_out.seen.wait(5)

    replyer = calc_replyer(on_call=slow_until_the_requester_retries)
    services.start(replyer, replyer_addresses("calc", port))
    requester = services.start(calc_requester(timeout_s=0.3, retries=2),
                               requester_addresses("calc", port))
    logger = logging.getLogger("service_framework")
    logger.addHandler(attempt_timed_out)
    try:
        assert ask(requester, "calc", {"x": 9}) == {"y": 18}
    finally:
        logger.removeHandler(attempt_timed_out)
        attempt_timed_out.seen.set()
    # At-least-once: the retry reached the handler a second time; its answer was used.
    assert [call["x"] for call in replyer.calls] == [9, 9]
    assert ask(requester, "calc", {"x": 10}) == {"y": 20}


def test_a_late_reply_on_the_current_socket_is_discarded(services):
    """A raw ROUTER answers request 2 first with request 1's id, then properly."""
    port = free_port()
    context = zmq.Context.instance()
    router = context.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    router.bind(f"tcp://{endpoint(port)}")
    requester = services.start(calc_requester(timeout_s=2.0), requester_addresses("calc", port))
    seen_rids: list = []

    def fake_replyer() -> None:
        for _ in range(2):
            if not router.poll(5000):
                return
            *route, body = router.recv_multipart()
            request = decode_request(body, max_bytes=DEFAULT_MAX_MESSAGE_BYTES)
            seen_rids.append(request.rid)
            if len(seen_rids) == 2:  # a late answer to the first request, then the real one
                router.send_multipart([*route, encode_reply(
                    request.workflow_id, seen_rids[0], {"y": -1},
                    max_bytes=DEFAULT_MAX_MESSAGE_BYTES)])
            router.send_multipart([*route, encode_reply(
                request.workflow_id, request.rid, {"y": request.args["x"] * 2},
                max_bytes=DEFAULT_MAX_MESSAGE_BYTES)])

    thread = threading.Thread(target=fake_replyer)
    thread.start()
    try:
        assert ask(requester, "calc", {"x": 1}) == {"y": 2}
        assert ask(requester, "calc", {"x": 2}) == {"y": 4}
    finally:
        thread.join(5)
        router.close()
    assert len(set(seen_rids)) == 2  # every request carries its own id
    assert requester.runtime.counters.get("late_replies_dropped") == 1
