"""Snapshots in parts (issue 12): a state larger than one message is sent as fragments,
checked part by part, with at most a window of parts in flight per in side; old
single-message snapshots still work both ways."""

from __future__ import annotations

import contextlib
import threading
from typing import Any, Iterator, TypedDict

import zmq
from helpers import endpoint, free_port, make_module, wait_until
from hypothesis import given, settings
from hypothesis import strategies as st

from service_framework import Service
from service_framework.states import parts, protocol
from service_framework.wire import codec

SMALL = 64 * 1024  # max_message_bytes in these tests: a state of 20,000 levels needs parts
LEVELS = {"levels": {str: int}}


def book(levels: int) -> dict:
    return {"levels": {f"L{n:06d}": n for n in range(levels)}, "name": "book", "empty": {}}


def fill(producer: Service, value: dict, chunk: int = 1000) -> None:
    """Sends `value` as deltas each small enough for one message."""
    levels = list(value["levels"].items())
    producer.runtime.to_send("state", "book", {**value, "levels": {}, "is_snapshot": True})
    for start in range(0, len(levels), chunk):
        producer.runtime.to_send("state", "book",
                                 {"levels": dict(levels[start:start + chunk])})


# -- cutting and merging ------------------------------------------------------------------
values = st.recursive(st.integers() | st.text(max_size=3) | st.lists(st.integers(), max_size=3),
                      lambda children: st.dictionaries(st.text(max_size=4), children,
                                                       max_size=8), max_leaves=40)


@settings(max_examples=40, deadline=None)
@given(st.dictionaries(st.text(max_size=4), values, max_size=12), st.integers(1, 20))
def test_fragments_merge_back_to_the_value_and_stay_small(value, limit):
    fragments = parts.fragments(value, limit)
    rebuilt: dict = {}
    for fragment in fragments:
        assert parts._weight(fragment, 10 ** 9) <= max(limit, 1) + 2 * _depth(fragment) \
            or _has_big_leaf(fragment, limit)
        parts.merge_fragment(rebuilt, fragment)
    assert rebuilt == value


def _depth(value) -> int:
    return 1 + max((_depth(v) for v in value.values()), default=0) \
        if value.__class__ is dict else 0


def _has_big_leaf(value, limit) -> bool:  # a list, or one entry heavier than the limit
    return value.__class__ is list or value.__class__ is dict and any(
        _has_big_leaf(v, limit) or parts._weight(v, limit) >= limit for v in value.values())


def test_packed_parts_fit_the_message_limit_and_are_cut_finer_when_needed():
    value = book(20_000)
    part_set = parts.PartSet(value, SMALL - 1024)
    packed = []
    while len(packed) < len(part_set.entries):
        packed.append(part_set.packed(len(packed)))
    assert len(packed) > 1 and all(len(body) <= SMALL - 1024 for body in packed)
    rebuilt: dict = {}
    for body in packed:
        parts.merge_fragment(rebuilt, codec.unpack(body))
    assert rebuilt == value


def test_a_part_set_is_the_value_at_its_seq_whatever_changes_after():
    value = {"levels": {"a": 1}, "meta": {"owner": "x"}}
    part_set = parts.PartSet(value, 1 << 20)
    value["meta"]["owner"] = "changed"  # a later merge patch, in place
    value["levels"]["b"] = 2
    assert codec.unpack(part_set.packed(0)) == {"levels": {"a": 1}, "meta": {"owner": "x"}}


def test_transfers_send_a_window_at_a_time_and_stay_bounded():
    transfers = parts.Transfers()

    def big() -> parts.PartSet:
        return parts.PartSet({"levels": {str(n): n for n in range(10 * parts.PART_ITEMS)}},
                             1 << 30)

    first = transfers.start(b"peer", "r1", ("e", 1), big, window=3, now=0.0)
    assert [part.index for part in first] == [0, 1, 2]
    assert transfers.more(b"peer", "r1", received=1, now=1.0)[0].index == 3
    assert transfers.more(b"peer", "r1", received=1, now=1.0) == []  # nothing new allowed
    assert transfers.more(b"other", "r1", received=5, now=1.0) == []  # not its transfer
    # an in side claiming parts it was never sent gets one window more, not all the rest
    assert [part.index for part in transfers.more(b"peer", "r1", received=10**6, now=1.0)
            ] == [4, 5, 6]
    # a flood of requests never cuts off transfers that move: the new ones are refused
    started = [transfers.start(b"p%d" % n, "r", ("e", 1), big, window=1, now=2.0)
               for n in range(parts.MAX_TRANSFERS + 10)]
    assert len(transfers) == parts.MAX_TRANSFERS and started.count(None) == 11
    assert transfers.more(b"peer", "r1", received=5, now=3.0)  # "peer" goes on
    assert transfers.start(b"p0", "again", ("e", 1), big, window=1, now=3.0)  # one per peer
    assert len(transfers) == parts.MAX_TRANSFERS and transfers.more(b"p0", "r", 1, 3.0) == []
    # one that stalled makes room
    assert transfers.start(b"new", "r", ("e", 1), big, window=1, now=2.0 + parts.STALLED_S)
    assert transfers.more(b"p70", "r", 1, now=9.0 + parts.TRANSFER_IDLE_S) == []
    assert len(transfers) == 0  # idle ones expired


def test_late_joiners_at_other_seqs_never_cut_off_a_transfer_under_way():
    transfers = parts.Transfers()

    def big() -> parts.PartSet:
        return parts.PartSet({"levels": {str(n): n for n in range(3 * parts.PART_ITEMS)}},
                             1 << 30)

    for seq in range(1, parts.MAX_PART_SETS + 1):  # each set being read by a transfer
        assert transfers.start(b"p%d" % seq, "r", ("e", seq), big, 1, 0.0)[0].seq == seq
    late = transfers.start(b"late", "r", ("e", 99), big, 1, 0.0)
    assert late[0].seq == parts.MAX_PART_SETS  # the newest kept set, not a new one
    assert len(transfers._sets) == parts.MAX_PART_SETS
    for seq in range(1, parts.MAX_PART_SETS + 1):  # the others go on
        assert transfers.more(b"p%d" % seq, "r", 1, 0.0)[0].index == 1
    while transfers.more(b"p1", "r", 99, 0.0):  # p1 done: its set may make room
        pass
    assert transfers.start(b"later", "r", ("e", 100), big, 1, 0.0)[0].seq == 100


# -- over ZeroMQ and on the bus -------------------------------------------------------------
def producer_module():
    return make_module("parts_producer", state_models={"out": {"book": {
        "state_type": "delta_update_out",
        "optional_arguments": {"levels": {str: int}, "name": str, "empty": dict}}}})


def consumer_module():
    return make_module("parts_consumer", state_models={"in": {"book": {
        "state_type": "delta_update_in",
        "optional_arguments": {"levels": {str: int}, "name": str, "empty": dict},
        "optional_creation_arguments": {"snapshot_timeout_s": 5.0}}}})


def pair(transport, **kwargs) -> tuple[Service, Service, dict]:
    if transport == "zmq":
        publisher, snapshots = endpoint(free_port()), endpoint(free_port())
    else:
        publisher, snapshots = "book:1", "book:2"
    producer = Service(service_module=producer_module(), transport=transport,
                       console_loglevel="WARNING", max_message_bytes=SMALL, **kwargs,
                       addresses={"states": {"out": {"book": {"publisher": publisher,
                                                              "replyer": snapshots}}}})
    consumer = Service(service_module=consumer_module(), transport=transport,
                       console_loglevel="WARNING", max_message_bytes=SMALL,
                       addresses={"states": {"in": {"book": {"subscriber": publisher,
                                                             "requester": snapshots}}}})
    return producer, consumer, {"publisher": publisher, "snapshots": snapshots}


def test_a_state_larger_than_one_message_syncs_in_parts_over_zmq():
    producer, consumer, _ = pair("zmq")
    producer.run_service()
    try:
        value = book(20_000)
        fill(producer, value)
        consumer.run_service()
        state = consumer.runtime.in_states["book"]
        wait_until(lambda: state.synced, timeout=20, message="the consumer in sync")
        assert state.value == value and state.seq == 21
        assert state.snapshot_bytes > SMALL  # it came in several parts
        for n in range(5):  # and deltas follow as usual
            producer.runtime.to_send("state", "book", {"levels": {"L000000": -n}})
        wait_until(lambda: state.seq == 26, timeout=10, message="the deltas")
        assert state.value["levels"]["L000000"] == -4
    finally:
        consumer.stop_service()
        producer.stop_service()


def test_a_state_larger_than_one_message_syncs_in_parts_on_the_bus(sf_bus):
    producer, consumer, _ = pair(sf_bus.bus)
    producer.run_service()
    value = book(20_000)
    fill(producer, value)
    consumer.run_service()
    sf_bus.run_until_idle()
    state = consumer.runtime.in_states["book"]
    try:
        assert state.synced and state.value == value and state.snapshot_bytes > SMALL
        assert state.snapshot_requests == 1 and state.bad_updates == 0
    finally:
        consumer.stop_service()
        producer.stop_service()


def test_transfers_that_stall_hold_no_part_set_from_a_late_joiner():
    """In sides that crashed mid-transfer (or ask again and again for the same parts) kept
    both part sets busy for 60 s: every late joiner got an old set it could not use."""
    transfers = parts.Transfers()

    def big() -> parts.PartSet:
        return parts.PartSet({"levels": {str(n): n for n in range(3 * parts.PART_ITEMS)}},
                             1 << 30)

    for seq in range(1, parts.MAX_PART_SETS + 1):
        transfers.start(b"p%d" % seq, "r", ("e", seq), big, 1, 0.0)
    for second in range(1, int(parts.STALLED_S) + 2):  # asking for nothing new
        transfers.more(b"p1", "r", 1, float(second))
    assert transfers.start(b"late", "r", ("e", 9), big, 1, 1.0)[0].seq == parts.MAX_PART_SETS
    late = transfers.start(b"later", "r", ("e", 9), big, 1, parts.STALLED_S + 1)
    assert late[0].seq == 9  # a set of its own seq: a stalled transfer made room
    assert transfers.more(b"p1", "r", 1, parts.STALLED_S + 1) == []  # dropped with its set


def test_parts_in_flight_stay_within_what_a_router_holds_for_one_peer():
    transfers = parts.Transfers()

    def large() -> parts.PartSet:  # three parts of ~10 MB: one in flight at a time
        return parts.PartSet({"notes": {f"n{n:06d}": "x" * 500 for n in range(60_000)}},
                             codec.DEFAULT_MAX_MESSAGE_BYTES)

    first = transfers.start(b"peer", "r", ("e", 1), large, window=4, now=0.0)
    assert [part.index for part in first] == [0]
    assert len(first[0].fragment) > parts.FLIGHT_BYTES // 2  # two would be too many
    assert transfers.more(b"peer", "r", received=0, now=0.0) == []
    assert [part.index for part in transfers.more(b"peer", "r", received=1, now=0.0)] == [1]


def test_a_state_of_14_mb_parts_syncs_over_zmq():
    """60,000 notes of 700 bytes: three parts of 14 MB under the default 16 MiB limit. Sent
    four at a time, the ROUTER's 16 MiB per peer refused two of them, every time."""
    model = {"notes": {str: str}}
    publisher, snapshots = endpoint(free_port()), endpoint(free_port())
    producer = Service(service_module=make_module("notes_out", state_models={"out": {"book": {
        "state_type": "delta_update_out", "optional_arguments": model}}}),
        console_loglevel="WARNING", addresses={"states": {"out": {"book": {
            "publisher": publisher, "replyer": snapshots}}}})
    consumer = Service(service_module=make_module("notes_in", state_models={"in": {"book": {
        "state_type": "delta_update_in", "optional_arguments": model}}}),
        console_loglevel="WARNING", addresses={"states": {"in": {"book": {
            "subscriber": publisher, "requester": snapshots}}}})
    producer.run_service()
    try:
        for start in range(0, 60_000, 10_000):
            producer.runtime.to_send("state", "book", {"notes": {
                f"n{n:06d}": "x" * 700 for n in range(start, start + 10_000)}})
        consumer.run_service()
        state = consumer.runtime.in_states["book"]
        wait_until(lambda: state.synced, timeout=30, message="the consumer in sync")
        assert len(state.value["notes"]) == 60_000 and state.snapshot_requests == 1
        assert state.snapshot_bytes > 3 * 14_000_000
    finally:
        consumer.stop_service()
        producer.stop_service()


def test_with_every_transfer_slot_moving_a_joiner_gets_one_message(sf_bus, monkeypatch):
    monkeypatch.setattr(parts, "MAX_TRANSFERS", 0)  # as if 64 in sides were being served
    producer, consumer, _ = pair(sf_bus.bus)
    producer.run_service()
    try:
        fill(producer, book(100))
        consumer.run_service()
        sf_bus.run_until_idle()
        state = consumer.runtime.in_states["book"]
        assert state.synced and state.value == book(100) and state.snapshot_requests == 1
        assert producer.runtime.counters["snapshot_transfers_full"] == 1
    finally:
        consumer.stop_service()
        producer.stop_service()


class Order(TypedDict):
    a: str
    b: str
    c: str
    d: str
    e: str


def test_records_cut_across_parts_are_checked_whole(sf_bus):
    """Records of ~15 KB under a 64 KiB limit: parts cut finer split a record, whose pieces
    fail the model alone (a TypedDict requires all its keys). The whole value is checked
    once it is in: valid, it syncs; it never did before."""
    model = {"orders": {str: Order}}
    out = make_module("orders_out", state_models={"out": {"book": {
        "state_type": "delta_update_out", "optional_arguments": model}}})
    into = make_module("orders_in", state_models={"in": {"book": {
        "state_type": "delta_update_in", "optional_arguments": model}}})
    producer = Service(service_module=out, transport=sf_bus.bus, console_loglevel="WARNING",
                       max_message_bytes=SMALL, addresses={"states": {"out": {
                           "book": {"publisher": "book:1", "replyer": "book:2"}}}})
    consumer = Service(service_module=into, transport=sf_bus.bus, console_loglevel="WARNING",
                       max_message_bytes=SMALL, addresses={"states": {"in": {
                           "book": {"subscriber": "book:1", "requester": "book:2"}}}})
    producer.run_service()
    try:
        for n in range(100):
            producer.runtime.to_send("state", "book", {"orders": {
                f"o{n:03d}": {key: key * 3000 for key in "abcde"}}})
        consumer.run_service()
        sf_bus.advance(5)
        state = consumer.runtime.in_states["book"]
        assert state.synced and state.value == producer.runtime.out_states["book"].value
        assert state.snapshot_requests == 1 and state.bad_updates == 0
    finally:
        consumer.stop_service()
        producer.stop_service()


# -- a scripted out side: bad parts, interrupted snapshots, old replies ----------------------
class FakeOutSide:
    """A raw ROUTER answering snapshot requests with whatever `script` says, in a thread."""

    def __init__(self, script) -> None:
        self.port = free_port()
        self.script = script  # (request number, request) -> bodies to send
        self.requests: list[protocol.SnapshotRequest] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        router = zmq.Context.instance().socket(zmq.ROUTER)
        router.linger = 0
        router.bind(f"tcp://127.0.0.1:{self.port}")
        try:
            while not self.stop.is_set():
                if not router.poll(50):
                    continue
                peer, body = router.recv_multipart()
                request = protocol.decode_snapshot_request(body)
                self.requests.append(request)
                for reply in self.script(len(self.requests) - 1, request):
                    router.send_multipart([peer, reply])
        finally:
            router.close(0)


def part(rid, epoch, index, total, fragment) -> bytes:
    """Part `index` of `total` (only the last says how many)."""
    return protocol.encode_snapshot_part(rid, epoch, 1, index,
                                         total if index == total - 1 else None,
                                         codec.pack(fragment))


@contextlib.contextmanager
def synced_from(script) -> Iterator[tuple[Any, FakeOutSide]]:
    """An in-state asking `script`'s fake out side for snapshots, once it is in sync."""
    fake = FakeOutSide(script)
    module = make_module("parts_consumer", state_models={"in": {"book": {
        "state_type": "delta_update_in", "optional_arguments": {"levels": {str: int}},
        "optional_creation_arguments": {"snapshot_timeout_s": 0.3}}}})
    consumer = Service(service_module=module, console_loglevel="WARNING", addresses={
        "states": {"in": {"book": {"subscriber": endpoint(free_port()),
                                   "requester": endpoint(fake.port)}}}})
    try:
        consumer.run_service()
        state = consumer.runtime.in_states["book"]
        wait_until(lambda: state.synced, timeout=20, message="the consumer in sync")
        yield state, fake
    finally:
        consumer.stop_service()
        fake.stop.set()


def test_a_bad_value_in_a_later_part_is_refused_and_the_snapshot_asked_again(caplog):
    def script(number, request):
        if request.next is not None:
            bad = {"levels": {"b": "not an int"}} if number < 3 else {"levels": {"b": 2}}
            return [part(request.rid, "E", 1, 2, bad)]
        return [part(request.rid, "E", 0, 2, {"levels": {"a": 1}})]

    with synced_from(script) as (state, _):
        assert state.value == {"levels": {"a": 1, "b": 2}}
        assert state.bad_updates >= 1 and state.snapshot_timeouts >= 1
        assert "state 'book'" in caplog.text and "'levels'" in caplog.text


def test_parts_of_another_epoch_midway_restart_the_snapshot():
    def script(number, request):
        if request.next is not None:  # the out side restarted between the parts
            epoch = "E2" if number == 1 else "E1"
            return [part(request.rid, epoch, 1, 2, {"levels": {"b": 2}})]
        return [part(request.rid, "E1", 0, 2, {"levels": {"a": 1}})]

    with synced_from(script) as (state, _):
        assert state.value == {"levels": {"a": 1, "b": 2}} and state.sync.epoch == "E1"
        assert state.bad_updates == 1  # the stray part, named and dropped


def test_a_single_message_snapshot_of_an_older_out_side_is_taken():
    old_reply = lambda number, request: [protocol.encode_snapshot(  # noqa: E731
        request.rid, "OLD", 3, {"levels": {"a": 1}})]
    with synced_from(old_reply) as (state, fake):
        assert state.value == {"levels": {"a": 1}} and state.seq == 3
        assert fake.requests[0].window == 4  # it offered to take parts


def test_an_old_in_side_gets_one_message_and_a_peer_that_never_asks_on_gets_a_window():
    producer, _, addresses = pair("zmq")
    producer.run_service()
    socket = zmq.Context.instance().socket(zmq.DEALER)
    socket.linger = 0
    socket.connect(f"tcp://{addresses['snapshots']}")
    try:
        producer.runtime.to_send("state", "book", {"levels": {"a": 1}, "is_snapshot": True})
        socket.send(protocol.encode_snapshot_request("old"))  # 0.x: no window
        assert socket.poll(10_000)
        old = protocol.decode_snapshot(socket.recv())
        assert old.part is None and old.value == {"levels": {"a": 1}}
        fill(producer, book(20_000))
        socket.send(protocol.encode_snapshot_request("greedy", window=3))
        got = []
        while socket.poll(1000):  # three parts come, and no more until asked
            got.append(protocol.decode_snapshot(socket.recv()).part)
        assert got == [0, 1, 2]
        socket.send(protocol.encode_snapshot_more("greedy", 1))
        assert socket.poll(10_000) and protocol.decode_snapshot(socket.recv()).part == 3
        assert not socket.poll(300)
        out = producer.runtime.out_states["book"]
        assert len(out.transfers) == 1
    finally:
        socket.close(0)
        producer.stop_service()
