"""The state protocol without sockets: bodies, the out side's numbering, the in side's sync."""

from datetime import datetime, timezone
from decimal import Decimal

import pytest

from service_framework.states import protocol
from service_framework.states.out_state import OutStateCore, split_protocol_keys
from service_framework.states.protocol import Heartbeat, ProtocolError, Snapshot, Update
from service_framework.states.sync import APPLIED, BUFFERED, IGNORED, LOST, OK, SYNCED, InStateSync
from service_framework.wire.codec import CodecError, pack

D = Decimal
EPOCH = "e1"


def delta(seq, args, epoch=EPOCH):
    return Update(epoch, seq, False, args)


def synced_at(seq=0, value=None, epoch=EPOCH):
    sync = InStateSync()
    assert sync.on_snapshot(Snapshot(None, epoch, seq, dict(value or {}))) is SYNCED
    sync.take_applied()
    return sync


# -- bodies -----------------------------------------------------------------------------
def test_update_round_trips_with_decimal_keys_and_datetimes():
    args = {"asks": {D("1.5"): D("2")}, "updated_time": datetime(2030, 1, 1, tzinfo=timezone.utc)}
    body = protocol.encode_update("ab", 7, False, args, "wf-1")
    assert protocol.decode_message(body) == Update("ab", 7, False, args, "wf-1")


def test_heartbeat_is_a_message_without_args():
    assert protocol.decode_message(protocol.encode_heartbeat("ab", 3, 0.5)) == \
        Heartbeat("ab", 3, 0.5)


def test_snapshot_request_and_reply_round_trip():
    assert protocol.decode_snapshot_request(protocol.encode_snapshot_request("r1")).rid == "r1"
    body = protocol.encode_snapshot("r1", "ab", 9, {"a": {D(1): None}}, 1.0)
    assert protocol.decode_snapshot(body) == Snapshot("r1", "ab", 9, {"a": {D(1): None}}, 1.0)


@pytest.mark.parametrize("message", [
    [1, 2],
    {"v": 2, "epoch": "e", "seq": 1, "args": {}},
    {"v": 1, "epoch": 5, "seq": 1, "args": {}},
    {"v": 1, "epoch": "e", "seq": True, "args": {}},
    {"v": 1, "epoch": "e", "seq": -1},
    {"v": 1, "epoch": "e", "seq": 1, "args": [1]},
    {"v": 1, "epoch": "e", "seq": 1, "args": {}, "is_snapshot": 1},
    {"v": 1, "epoch": "e", "seq": 1, "args": {}, "workflow_id": 3},
])
def test_malformed_state_messages_raise_protocol_error(message):
    with pytest.raises(ProtocolError):
        protocol.decode_message(pack(message))


def test_undecodable_body_raises_codec_error():
    with pytest.raises(CodecError):
        protocol.decode_message(b"\xc1garbage")


# -- the out side -----------------------------------------------------------------------
def test_out_core_numbers_every_update_and_merges_deltas():
    core = OutStateCore("delta", epoch="e")
    first = protocol.decode_message(core.update({"asks": {D(1): D(2)}}))
    second = protocol.decode_message(core.update({"asks": {D(1): None, D(3): D(4)}}))
    assert (first.seq, second.seq, core.seq) == (1, 2, 2)
    assert second.args == {"asks": {D(1): None, D(3): D(4)}}  # the delta, as sent
    assert core.value == {"asks": {D(3): D(4)}}


def test_out_core_snapshot_update_replaces_the_value_and_keeps_its_identity():
    core = OutStateCore("delta", epoch="e")
    live = core.value
    core.update({"a": 1, "b": 2})
    core.update({"c": 3}, is_snapshot=True)
    assert core.value is live and live == {"c": 3}


def test_full_updates_are_whole_values():
    core = OutStateCore("full", epoch="e")
    core.update({"a": 1, "b": 2})
    update = protocol.decode_message(core.update({"a": 5}))
    assert update.is_snapshot and core.value == {"a": 5}


def test_an_update_that_cannot_be_encoded_changes_nothing():
    core = OutStateCore("delta", epoch="e")
    core.update({"a": 1})
    with pytest.raises(CodecError):
        core.update({"a": object()})
    assert (core.seq, core.value) == (1, {"a": 1})


def test_snapshot_reply_and_heartbeat_carry_epoch_and_seq():
    core = OutStateCore("delta", epoch="e", heartbeat_s=0.25)
    core.update({"a": 1})
    assert protocol.decode_snapshot(core.snapshot("r")) == Snapshot("r", "e", 1, {"a": 1}, 0.25)
    assert protocol.decode_message(core.heartbeat()) == Heartbeat("e", 1, 0.25)


def test_restart_starts_a_new_epoch_from_seq_zero():
    core = OutStateCore("delta")
    old = core.epoch
    core.update({"a": 1})
    core.restart()
    assert (core.seq, core.value) == (0, {}) and core.epoch != old


def test_protocol_keys_are_stripped_and_current_num_only_when_declared():
    args, is_snapshot = split_protocol_keys({"a": 1, "is_snapshot": True, "current_num": 4},
                                            frozenset({"current_num", "is_snapshot"}))
    assert (args, is_snapshot) == ({"a": 1}, True)
    args, is_snapshot = split_protocol_keys({"a": 1, "current_num": 4}, frozenset())
    assert (args, is_snapshot) == ({"a": 1, "current_num": 4}, False)  # left to validation


# -- the in side ------------------------------------------------------------------------
def test_updates_before_the_first_snapshot_are_buffered_then_replayed_after_it():
    sync = InStateSync()
    assert sync.feed(delta(3, {"c": 3})) is BUFFERED
    assert sync.feed(delta(4, {"d": 4})) is BUFFERED
    assert sync.feed(delta(2, {"b": 2})) is BUFFERED  # older than the snapshot: dropped
    assert sync.on_snapshot(Snapshot("r", EPOCH, 2, {"a": 1, "b": 2})) is SYNCED
    assert sync.value == {"a": 1, "b": 2, "c": 3, "d": 4}
    assert [u.seq for u in sync.take_applied()] == [2, 3, 4]
    assert (sync.synced, sync.seq) == (True, 4)


def test_buffered_updates_are_applied_in_seq_order():
    sync = InStateSync()
    for seq in (3, 2, 4):
        sync.feed(delta(seq, {"last": seq}))
    sync.on_snapshot(Snapshot(None, EPOCH, 1, {}))
    assert (sync.value, sync.seq, sync.synced) == ({"last": 4}, 4, True)


def test_next_update_is_applied_in_place():
    sync = synced_at(0, {"a": 1})
    live = sync.value
    assert sync.feed(delta(1, {"a": None, "b": 2})) is APPLIED
    assert sync.value is live and live == {"b": 2} and sync.seq == 1


def test_duplicates_and_stale_updates_change_nothing():
    sync = synced_at(0)
    sync.feed(delta(1, {"a": 1}))
    sync.feed(delta(2, {"a": 2}))
    assert sync.feed(delta(2, {"a": 2})) is IGNORED
    assert sync.feed(delta(1, {"a": 1})) is IGNORED
    assert (sync.value, sync.seq, sync.synced, sync.losses) == ({"a": 2}, 2, True, 0)


def test_gap_loses_sync_and_the_next_snapshot_recovers():
    sync = synced_at(0)
    sync.feed(delta(1, {"a": 1}))
    assert sync.feed(delta(3, {"c": 3})) is LOST
    assert not sync.synced and "gap" in sync.reason and "expected seq 2, got 3" in sync.reason
    assert sync.value == {"a": 1}  # the last good value until the snapshot
    assert sync.feed(delta(4, {"d": 4})) is BUFFERED
    assert sync.on_snapshot(Snapshot(None, EPOCH, 3, {"a": 1, "b": 2, "c": 3})) is SYNCED
    assert sync.value == {"a": 1, "b": 2, "c": 3, "d": 4} and sync.seq == 4


def test_a_gap_inside_the_buffer_asks_for_another_snapshot():
    sync = InStateSync()
    sync.feed(delta(2, {"b": 2}))
    sync.feed(delta(5, {"e": 5}))
    assert sync.on_snapshot(Snapshot(None, EPOCH, 1, {"a": 1})) is LOST
    assert "expected seq 3, got 5" in sync.reason and sync.value == {"a": 1, "b": 2}
    assert sync.on_snapshot(Snapshot(None, EPOCH, 4, {"d": 4})) is SYNCED
    assert sync.value == {"d": 4, "e": 5}


def test_new_epoch_loses_sync():
    sync = synced_at(5)
    assert sync.feed(delta(1, {"a": 1}, epoch="e2")) is LOST
    assert "epoch" in sync.reason
    assert sync.on_snapshot(Snapshot(None, "e2", 1, {"a": 1})) is SYNCED
    assert (sync.epoch, sync.seq, sync.value) == ("e2", 1, {"a": 1})


def test_heartbeat_ahead_of_the_last_update_means_a_lost_tail():
    sync = synced_at(0)
    sync.feed(delta(1, {"a": 1}))
    assert sync.on_heartbeat(Heartbeat(EPOCH, 1)) is OK
    assert sync.on_heartbeat(Heartbeat(EPOCH, 2)) is LOST
    assert "lost tail" in sync.reason


def test_heartbeat_of_a_new_epoch_loses_sync():
    sync = synced_at(3)
    assert sync.on_heartbeat(Heartbeat("e2", 0)) is LOST and "epoch" in sync.reason


def test_a_whole_value_update_resyncs_without_a_snapshot():
    sync = synced_at(0)
    sync.feed(delta(1, {"a": 1}))
    assert sync.feed(Update(EPOCH, 5, True, {"z": 1})) is SYNCED  # a gap, but a whole value
    assert (sync.value, sync.seq, sync.losses) == ({"z": 1}, 5, 0)


def test_stale_snapshot_never_rolls_back():
    sync = synced_at(0)
    sync.feed(delta(1, {"a": 1}))
    assert sync.on_snapshot(Snapshot(None, EPOCH, 0, {})) is IGNORED
    assert sync.value == {"a": 1}


def test_lose_sync_from_outside_counts_once():
    sync = synced_at(0)
    assert sync.lose_sync("timeout: silence") is LOST
    sync.lose_sync("again")
    assert (sync.losses, sync.reason) == (1, "timeout: silence")


def test_a_snapshot_handed_to_handlers_is_never_merged_into_later():
    snapshot = {"asks": {D(1): D(1)}}
    sync = InStateSync()
    sync.on_snapshot(Snapshot(None, EPOCH, 0, snapshot))
    sync.feed(delta(1, {"asks": {D(2): D(2)}}))
    assert snapshot == {"asks": {D(1): D(1)}}
