"""Hostile input on real ZeroMQ sockets: the service answers or drops it, counts it, goes on.

A replyer (on 127.0.0.1, a free port, a small `max_message_bytes`) is sent random bytes,
random msgpack, envelope variants (unknown `v`, missing or wrongly typed fields, unknown
keys, bad ext payloads), deep nesting, huge headers, oversize bodies and malformed
multi-frame messages from a raw DEALER. Every message gets exactly one answer, in order:
an error reply for what is bad (each counted in `runtime.counters`), a reply for what is
good; after every batch a good request is still answered. Lighter: a subscriber drops and
counts bad messages and handles the next good one; an in-state drops bad updates and
ends equal to its out side. Hypothesis runs derandomized: the same examples every run.
"""

from __future__ import annotations

import itertools
import struct
import time
from datetime import datetime
from decimal import Decimal
from typing import Any

import msgpack
import pytest
import zmq
from helpers import endpoint, free_port, make_module, wait_until
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from service_framework import Service
from service_framework.errors import ArgumentError
from service_framework.states import protocol
from service_framework.states.out_state import OutStateCore
from service_framework.wire import codec
from service_framework.wire.envelope import (
    EnvelopeError,
    decode_reply,
    decode_request,
    encode_request,
)
from service_framework.wire.validation import ArgsChecker
from service_framework_testing.strategies import arguments, invalid_arguments

MAX_BYTES = 4096
ANSWER_TIMEOUT_MS = 5000
REQUIRED = {"x": int, "price": Decimal}
OPTIONAL = {"tags": [str], "when": datetime}
MODEL = {"required_arguments": REQUIRED, "optional_arguments": OPTIONAL}
CHECK = ArgsChecker("calc", REQUIRED, OPTIONAL)
RETURN_CHECK = ArgsChecker("calc", {"y": int}, None)
ERROR_TYPES = {"CodecError", "EnvelopeError", "ArgumentError", "RuntimeError"}


def loop_alive(service: Service) -> bool:
    """Its loop thread still runs and its runtime is open: nothing killed the service."""
    thread = service.transport.scheduler.thread_of(service.runtime)
    return thread is not None and thread.is_alive() and not service.runtime.closed


def fuzz_settings(examples: int):
    return settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.large_base_example,
                                           HealthCheck.filter_too_much])


# -- the replyer -------------------------------------------------------------------------------
def on_new_request(args, to_send, states, config):
    if args["x"] == 13:
        raise RuntimeError("unlucky 13")
    return {"y": args["x"] * 2}  # may not fit in 64 bits: an error reply, not a crash


class RawDealer:
    """The fuzzer's socket: sends any frames, reads the answers in order."""

    def __init__(self, port: int) -> None:
        self.socket = zmq.Context.instance().socket(zmq.DEALER)
        self.socket.linger = 0
        self.socket.connect(f"tcp://{endpoint(port)}")
        self.good = 0

    def answer(self) -> tuple[list[bytes], Any]:
        assert self.socket.poll(ANSWER_TIMEOUT_MS), "no answer: the replyer left a message"
        frames = self.socket.recv_multipart()
        return frames, decode_reply(frames[-1], max_bytes=codec.DEFAULT_MAX_MESSAGE_BYTES)

    def answers_again(self, deadline_s: float = 10.0) -> None:
        """After libzmq dropped this peer: asks until answered (a request sent while the
        old connection was being torn down is lost with it), stale answers skipped."""
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            self.good += 1
            rid, x = f"again-{self.good}", 1000 + self.good
            self.socket.send(encode_request("good", {"x": x, "price": Decimal("1.5")}, rid,
                                            max_bytes=MAX_BYTES))
            while self.socket.poll(300):
                reply = decode_reply(self.socket.recv_multipart()[-1], max_bytes=MAX_BYTES)
                if reply.rid == rid:
                    assert (reply.error, reply.return_args) == (None, {"y": 2 * x})
                    return
        raise AssertionError(f"not answered again within {deadline_s:g}s")

    def still_answers(self) -> None:
        self.good += 1
        rid, x = f"good-{self.good}", 1000 + self.good  # never the unlucky 13
        self.socket.send(encode_request("good", {"x": x, "price": Decimal("1.5")}, rid,
                                        max_bytes=MAX_BYTES))
        _, reply = self.answer()
        assert (reply.rid, reply.error, reply.return_args) == (rid, None, {"y": 2 * x})


@pytest.fixture(scope="module")
def replyer():
    port = free_port()
    module = make_module("fuzzed_replyer", connection_models={"in": {"calc": {
        "connection_type": "replyer",
        "required_creation_arguments": {"on_new_request": on_new_request},
        "required_arguments": REQUIRED, "optional_arguments": OPTIONAL,
        "required_return_arguments": {"y": int},
    }}})
    service = Service(service_module=module, console_loglevel="WARNING",
                      addresses={"connections": {"in": {"calc": {"replyer": endpoint(port)}}}},
                      max_message_bytes=MAX_BYTES)
    service.run_service()
    client = RawDealer(port)
    client.still_answers()
    yield service, client
    assert loop_alive(service), "it died"
    client.socket.close()
    service.stop_service()


def answered_ok(body: bytes) -> bool:
    """Whether the replyer must answer `body` with a reply (else with an error reply)."""
    try:
        request = decode_request(body, max_bytes=MAX_BYTES)
        args = CHECK.check(request.args)
        if args["x"] == 13:
            return False
        codec.pack(RETURN_CHECK.check({"y": args["x"] * 2}), max_bytes=MAX_BYTES)
    except (codec.CodecError, EnvelopeError, ArgumentError):
        return False
    return True


def refused(service: Service) -> int:
    counters = service.runtime.counters
    return counters.get("bad_requests", 0) + counters.get("error_replies", 0)


def exchange(replyer, batch: list[list[bytes]]) -> None:
    """Sends each message of `batch`; checks its one answer; then a good request."""
    service, client = replyer
    before = refused(service)
    for frames in batch:
        client.socket.send_multipart(frames)
    errors = 0
    for frames in batch:
        route, reply = client.answer()
        assert route[:-1] == frames[:-1]  # routed back with the frames before the body
        if answered_ok(frames[-1]):
            assert reply.error is None, reply.error
        else:
            assert reply.error is not None, f"a reply to a bad request: {frames!r}"
            assert reply.error["type"] in ERROR_TYPES, reply.error
            errors += 1
    assert refused(service) - before == errors  # every bad request counted, once
    client.still_answers()


def packed(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


def encodable(value: Any) -> bytes:
    try:
        return codec.pack(value)
    except codec.CodecError:
        assume(False)
        raise


plain = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1),
              st.floats(allow_nan=False), st.text(max_size=10), st.binary(max_size=10)),
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.one_of(st.text(max_size=5), st.integers(0, 9)),
                                            inner, max_size=4)),
    max_leaves=20)
versions = st.one_of(st.just(1), st.integers(-3, 5), st.text(max_size=2), st.none(),
                     st.booleans(), st.floats(allow_nan=False))
workflow_ids = st.one_of(st.text(max_size=12), st.integers(0, 9), st.none(), st.binary(max_size=4))
args = st.one_of(arguments(MODEL), invalid_arguments(MODEL), plain)
envelopes = st.fixed_dictionaries({}, optional={
    "v": versions, "workflow_id": workflow_ids, "args": args, "rid": plain, "extra": plain})
ext_values = st.builds(msgpack.ExtType, st.integers(0, 127), st.binary(max_size=24)) | \
    st.builds(msgpack.Timestamp, st.integers(0, 2**32 - 1), st.integers(0, 999_999_999)) | \
    st.builds(lambda text: msgpack.ExtType(1, text.encode()), st.text(max_size=8)) | \
    st.builds(lambda data: msgpack.ExtType(2, data), st.binary(min_size=10, max_size=20))


@st.composite
def deep(draw) -> bytes:
    kind = draw(st.sampled_from(["array", "map", "tuple", "in-args"]))
    # Deep, yet within MAX_BYTES: a longer body never reaches the codec (ZMQ_MAXMSGSIZE).
    depth = draw(st.integers(1, (MAX_BYTES - 64) // (3 if kind == "map" else 1)))
    if kind == "array":
        return b"\x91" * depth + b"\xc0"
    if kind == "map":
        return b"\x81\xa1k" * depth + b"\xc0"
    if kind == "tuple":  # tuples nest as ext payloads: capped by the codec
        value = packed(None)
        for _ in range(min(depth, 100)):
            value = packed([msgpack.ExtType(codec.EXT_TUPLE, value)])
        return value
    return packed({"v": 1, "workflow_id": "w", "args": None})[:-1] + b"\x91" * depth + b"\xc0"


@st.composite
def huge_headers(draw) -> bytes:
    marker = draw(st.sampled_from([b"\xdf", b"\xdd", b"\xdb", b"\xc6", b"\xc9"]))
    count = draw(st.integers(2**16, 2**32 - 1))
    return marker + struct.pack(">I", count) + draw(st.binary(max_size=32))


@st.composite
def oversize(draw) -> bytes:
    size = draw(st.integers(MAX_BYTES + 1, 8 * MAX_BYTES))
    if draw(st.booleans()):
        return draw(st.binary(min_size=16, max_size=16)) * (size // 16 + 1)
    return encode_request("w", {"x": 1, "price": Decimal(1), "tags": ["x" * size]}, "r",
                          max_bytes=16 * MAX_BYTES)


def batches(bodies: st.SearchStrategy) -> st.SearchStrategy:
    return st.lists(bodies.map(lambda body: [body]), min_size=1, max_size=3)


@fuzz_settings(400)
@given(batch=batches(st.binary(max_size=300)))
def test_random_bytes_get_error_replies_and_the_replyer_goes_on(replyer, batch):
    exchange(replyer, batch)


@fuzz_settings(400)
@given(batch=batches(plain.map(packed)))
def test_random_msgpack_gets_error_replies(replyer, batch):
    exchange(replyer, batch)


@fuzz_settings(500)
@given(batch=batches(envelopes.map(encodable)))
def test_envelope_variants_get_an_error_reply_or_a_reply(replyer, batch):
    exchange(replyer, batch)


@fuzz_settings(200)
@given(batch=batches(st.fixed_dictionaries({
    "v": st.just(1), "workflow_id": st.just("w"),
    "args": st.fixed_dictionaries({"x": st.integers(0, 9) | ext_values,
                                   "price": ext_values})}).map(packed)))
def test_bad_ext_payloads_get_error_replies(replyer, batch):
    exchange(replyer, batch)


@fuzz_settings(200)
@given(batch=batches(st.one_of(deep(), huge_headers())))
def test_deep_nesting_and_huge_headers_get_error_replies(replyer, batch):
    exchange(replyer, batch)


@fuzz_settings(10)
@given(batch=batches(oversize()))
def test_oversize_bodies_are_dropped_unread_and_the_peer_comes_back(replyer, batch):
    # ZMQ_MAXMSGSIZE: libzmq drops the connection of a peer that sends more than
    # max_message_bytes before allocating it; no answer, nothing counted, the service goes
    # on and the peer (which reconnects) is answered again.
    service, client = replyer
    before = service.runtime.counters.get("bad_requests", 0)
    for frames in batch:
        client.socket.send_multipart(frames)
    assert not client.socket.poll(100), "an oversize body was answered"
    assert service.runtime.counters.get("bad_requests", 0) == before
    client.answers_again()


good_body = st.builds(lambda x: encode_request("w", {"x": x, "price": Decimal(2)}, "r",
                                               max_bytes=MAX_BYTES), st.integers(0, 99))


@fuzz_settings(300)
@given(batch=st.lists(st.tuples(st.lists(st.binary(max_size=40), max_size=4),
                                st.one_of(st.binary(max_size=40), good_body))
                      .map(lambda parts: [*parts[0], parts[1]]), min_size=1, max_size=3))
def test_multi_frame_messages_are_answered_on_their_route(replyer, batch):
    exchange(replyer, batch)


# -- a subscriber ------------------------------------------------------------------------------
TOPIC = b"ticks"
MARKERS = itertools.count(1)


def _start_subscriber():
    port = free_port()
    publisher = zmq.Context.instance().socket(zmq.XPUB)
    publisher.linger = 0
    publisher.bind(f"tcp://{endpoint(port)}")
    received: list[dict] = []
    module = make_module("fuzzed_subscriber", connection_models={"in": {"ticks": {
        "connection_type": "subscriber",
        "required_creation_arguments": {
            "on_new_message": lambda args, to_send, states, config: received.append(args)},
        "optional_creation_arguments": {"topic": "ticks"},  # exact matching of a set topic
        "required_arguments": {"seq": int}, "optional_arguments": {"price": Decimal},
    }}})
    service = Service(service_module=module, console_loglevel="WARNING",
                      addresses={"connections": {"in": {"ticks": {
                          "subscriber": [endpoint(port)]}}}}, max_message_bytes=MAX_BYTES)
    service.run_service()
    assert publisher.poll(10_000), "no subscription arrived"
    assert publisher.recv() == b"\x01" + TOPIC
    return service, publisher, received


@pytest.fixture(scope="module")
def subscriber():
    service, publisher, received = _start_subscriber()
    yield service, publisher, received
    assert loop_alive(service), "it died"
    publisher.close()
    service.stop_service()


def subscriber_drops(frames: list[bytes]) -> str | None:
    """The counter a message must raise ('malformed', 'bad_messages'), or None."""
    if len(frames) != 2:
        return "malformed"
    if frames[0] != TOPIC:
        return None  # a longer topic that ZMQ's prefix filter let through: not ours
    try:
        ArgsChecker("ticks", {"seq": int}, {"price": Decimal}).check(
            decode_request(frames[1], max_bytes=MAX_BYTES).args)
    except (codec.CodecError, EnvelopeError, ArgumentError):
        return "bad_messages"
    return None


sub_bodies = st.one_of(st.binary(max_size=200), plain.map(packed), envelopes.map(encodable),
                       deep())  # oversize bodies cost the connection: their own test below
sub_messages = st.one_of(
    sub_bodies.map(lambda body: [TOPIC, body]),
    st.tuples(st.sampled_from([TOPIC + b"x", TOPIC]), sub_bodies, st.binary(max_size=9))
    .map(list),
    sub_bodies.map(lambda body: [TOPIC + b"_eu", body]))


@fuzz_settings(200)
@given(batch=st.lists(sub_messages, min_size=1, max_size=3))
def test_a_subscriber_drops_bad_messages_and_handles_the_next_good_one(subscriber, batch):
    service, publisher, received = subscriber
    counters = service.runtime.counters
    before = {key: counters.get(key, 0) for key in ("malformed", "bad_messages")}
    expected = dict(before)
    for frames in batch:
        publisher.send_multipart(frames)
        if (counter := subscriber_drops(frames)) is not None:
            expected[counter] += 1
    # a price no fuzzed message has (those have at most 4 decimal places)
    marker = {"v": 1, "workflow_id": "good",
              "args": {"seq": 1, "price": Decimal(f"0.{next(MARKERS):012d}")}}
    publisher.send_multipart([TOPIC, codec.pack(marker)])
    wait_until(lambda: marker["args"] in received, 5.0, message="the good message handled")
    assert {key: counters.get(key, 0) for key in expected} == expected


def test_an_oversize_publication_is_dropped_unread_with_its_connection():
    service, publisher, received = _start_subscriber()
    try:
        before = service.runtime.counters.get("bad_messages", 0)
        publisher.send_multipart([TOPIC, b"\x00" * (MAX_BYTES + 1)])
        # ZMQ_MAXMSGSIZE: libzmq drops the message unread and the connection with it (the
        # publisher sees the unsubscription). A connecting socket does not reconnect after
        # such a protocol error (libzmq's rule): the subscriber is cut off from that
        # publisher, says so by its silence warning, and lives on.
        assert publisher.poll(10_000), "the connection was not dropped"
        assert publisher.recv() == b"\x00" + TOPIC
        assert service.runtime.counters.get("bad_messages", 0) == before  # never decoded
        assert loop_alive(service)
    finally:
        publisher.close()
        service.stop_service()


def test_a_dropped_message_is_logged(subscriber, caplog):
    service, publisher, received = subscriber
    publisher.send_multipart([TOPIC, b"\xc1"])  # not msgpack
    publisher.send_multipart([TOPIC, b"a", b"b"])  # three frames
    marker = {"v": 1, "workflow_id": "good",
              "args": {"seq": 2, "price": Decimal(f"0.{next(MARKERS):012d}")}}
    publisher.send_multipart([TOPIC, codec.pack(marker)])
    wait_until(lambda: marker["args"] in received, 5.0, message="the good message handled")
    dropped = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert any("bad message" in m for m in dropped), dropped
    assert any("3 frame(s)" in m for m in dropped), dropped


# -- an in-state -------------------------------------------------------------------------------
BOOK = {"asks": {Decimal: Decimal}, "note": str}


class FakeOutSide:
    """The out side of an in-state, by hand: a publisher, a snapshot replyer, a core."""

    def __init__(self) -> None:
        context = zmq.Context.instance()
        self.core = OutStateCore("delta", epoch="e1", heartbeat_s=60.0)
        self.publisher, self.replyer = context.socket(zmq.XPUB), context.socket(zmq.ROUTER)
        self.ports = free_port(), free_port()
        for socket, port in ((self.publisher, self.ports[0]), (self.replyer, self.ports[1])):
            socket.linger = 0
            socket.bind(f"tcp://{endpoint(port)}")

    def serve_snapshots(self) -> None:
        while self.replyer.poll(0):
            *route, body = self.replyer.recv_multipart()
            rid = protocol.decode_snapshot_request(body).rid
            self.replyer.send_multipart([*route, self.core.snapshot(rid)])

    def publish(self, delta: dict) -> None:
        self.publisher.send_multipart([TOPIC, self.core.update(delta)])

    def wait_in_sync(self, in_state) -> None:
        def caught_up() -> bool:
            self.serve_snapshots()
            return (in_state.synced and in_state.seq == self.core.seq
                    and in_state.value == self.core.value)

        wait_until(caught_up, 10.0, interval=0.002, message="the in-state back in sync")

    def close(self) -> None:
        self.publisher.close()
        self.replyer.close()


@pytest.fixture(scope="module")
def in_state():
    out = FakeOutSide()
    module = make_module("fuzzed_in_state", state_models={"in": {"book": {
        "state_type": "delta_update_in", "optional_arguments": BOOK,
        "optional_creation_arguments": {"topic": "ticks"}}}})
    service = Service(service_module=module, console_loglevel="WARNING",
                      addresses={"states": {"in": {"book": {
                          "subscriber": [endpoint(out.ports[0])],
                          "requester": [endpoint(out.ports[1])]}}}},
                      max_message_bytes=MAX_BYTES)
    service.run_service()
    component = service.runtime.in_states["book"]
    assert out.publisher.poll(10_000), "no subscription arrived"
    out.publish({"asks": {Decimal("100.5"): Decimal("1")}, "note": "start"})
    out.wait_in_sync(component)
    yield service, out, component
    assert loop_alive(service), "it died"
    out.close()
    service.stop_service()


def state_update_is_bad(frames: list[bytes]) -> bool:
    if len(frames) != 2:
        return True
    if frames[0] != TOPIC:
        return False
    try:
        message = protocol.decode_message(frames[1], max_bytes=MAX_BYTES)
        if isinstance(message, protocol.Update):
            ArgsChecker("book", None, BOOK).check(message.args, partial=not message.is_snapshot)
    except ValueError:
        return True
    return False


epochs = st.one_of(st.text(max_size=4).filter(lambda e: e != "e1"), st.integers(), st.none())
updates = st.fixed_dictionaries({}, optional={
    "v": versions, "epoch": epochs, "seq": st.one_of(st.integers(-2, 2**40), st.text(max_size=2)),
    "is_snapshot": st.one_of(st.booleans(), st.integers(0, 1)), "workflow_id": workflow_ids,
    "heartbeat_s": st.one_of(st.floats(allow_nan=False), st.none()),
    "args": st.one_of(invalid_arguments({"optional_arguments": BOOK}),
                      arguments({"optional_arguments": BOOK}), plain)})
state_messages = st.one_of(
    st.one_of(st.binary(max_size=200), plain.map(packed), updates.map(encodable), deep())
    .map(lambda body: [TOPIC, body]),
    st.lists(st.binary(max_size=20), min_size=3, max_size=4).map(lambda parts: [TOPIC, *parts]))


@fuzz_settings(200)
@given(batch=st.lists(state_messages, min_size=1, max_size=3),
       level=st.decimals(min_value=1, max_value=999, places=2))
def test_an_in_state_drops_bad_updates_and_recovers(in_state, batch, level):
    service, out, component = in_state
    before = service.runtime.counters.get("bad_state_updates", 0)
    bad = 0
    for frames in batch:
        out.publisher.send_multipart(frames)
        bad += state_update_is_bad(frames)
    out.publish({"asks": {level: Decimal(len(batch))}})
    out.wait_in_sync(component)
    assert service.runtime.counters.get("bad_state_updates", 0) - before == bad
