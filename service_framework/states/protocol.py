"""The state protocol's bodies (SPEC §7, the ZeroMQ Guide's Clone pattern), as pure functions.

Four bodies, msgpack maps through `service_framework.wire.codec`, each with ``"v": 1``:

* update (publisher socket, frames ``[topic, body]``):
  ``{v, epoch, seq, is_snapshot, args, workflow_id}`` — `args` is a delta (merged with
  JSON Merge Patch) unless `is_snapshot`, then it is the whole value;
* heartbeat (publisher socket, same topic): ``{v, epoch, seq, heartbeat_s}`` — no `args`;
* snapshot request (requester → replyer): ``{v, rid}``, or ``{v, rid, window}`` from an in
  side that takes a large snapshot in parts (`parts.py`), then ``{v, rid, next}`` for more;
* snapshot reply: ``{v, rid, epoch, seq, value, heartbeat_s}``; a part of one adds
  ``part`` (its index), its `value` a fragment of the whole; the last part adds ``parts``
  (how many there were): the end marker.

Both additions are optional keys: an out side that does not know `window` answers in one
message, which this in side takes as before; an in side that does not send it gets one.

No sockets here, so a test harness can fake an out side (or an in side) with the same
bytes. Decoding checks the structure only; argument values are validated against the
state model by the caller. Every malformed body raises `ProtocolError` (a ValueError), a
body the codec cannot read raises `CodecError`; both mean "log, count, drop".
"""

from __future__ import annotations

from typing import Any, NamedTuple

from ..errors import ProtocolError
from ..wire import codec
from ..wire.codec import DEFAULT_MAX_MESSAGE_BYTES

__all__ = [
    "VERSION", "ProtocolError", "Update", "Heartbeat", "SnapshotRequest", "Snapshot",
    "encode_update", "encode_heartbeat", "decode_message", "encode_snapshot_request",
    "decode_snapshot_request", "encode_snapshot", "decode_snapshot", "encode_snapshot_more",
    "encode_snapshot_part",
]

VERSION = 1
MAX_HEARTBEAT_S = 86_400.0
_pack = codec.pack
_unpack = codec.unpack
_new_tuple = tuple.__new__


class Update(NamedTuple):
    """One numbered change of a state; `args` is the whole value when `is_snapshot`."""

    epoch: str
    seq: int
    is_snapshot: bool
    args: dict
    workflow_id: str | None = None


class Heartbeat(NamedTuple):
    """'Still here, at `seq`': lets an idle in side notice a lost last update."""

    epoch: str
    seq: int
    heartbeat_s: float | None = None


class SnapshotRequest(NamedTuple):
    rid: str
    window: int | None = None  # parts the in side takes in flight (it takes parts)
    next: int | None = None  # a request for more parts: the in side has those below it


class Snapshot(NamedTuple):
    """The whole value at `seq`; `rid` names the request it answers."""

    rid: str | None
    epoch: str
    seq: int
    value: dict
    heartbeat_s: float | None = None
    part: int | None = None  # a part of a snapshot: its index; the last says how many
    parts: int | None = None


def encode_update(epoch: str, seq: int, is_snapshot: bool, args: dict,
                  workflow_id: str | None = None, *,
                  max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> bytes:
    return _pack({"v": VERSION, "epoch": epoch, "seq": seq, "is_snapshot": is_snapshot,
                  "args": args, "workflow_id": workflow_id}, max_bytes=max_bytes)


def encode_heartbeat(epoch: str, seq: int, heartbeat_s: float | None = None) -> bytes:
    return _pack({"v": VERSION, "epoch": epoch, "seq": seq, "heartbeat_s": heartbeat_s})


def encode_snapshot_request(rid: str, window: int | None = None) -> bytes:
    if window is None:
        return _pack({"v": VERSION, "rid": rid})
    return _pack({"v": VERSION, "rid": rid, "window": window})


def encode_snapshot_more(rid: str, received: int) -> bytes:
    return _pack({"v": VERSION, "rid": rid, "next": received})


def encode_snapshot_part(rid: str, epoch: str, seq: int, part: int, parts: int | None,
                         packed_fragment: bytes, heartbeat_s: float | None = None) -> bytes:
    """Part `part` of the snapshot at (epoch, seq), around a packed fragment; the last
    part says how many there are (`parts`): the end marker."""
    head = _pack({"v": VERSION, "rid": rid, "epoch": epoch, "seq": seq,
                  "heartbeat_s": heartbeat_s, "part": part, "parts": parts})
    return b"".join((bytes((head[0] + 1,)), head[1:], _VALUE_KEY, packed_fragment))


def encode_snapshot_around(rid: str | None, epoch: str, seq: int, packed_value: bytes,
                           heartbeat_s: float | None = None, *,
                           max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> bytes:
    """The same bytes as `encode_snapshot`, around a value packed once (`codec.pack`): every
    request for one snapshot costs a copy of it, not an encoding."""
    head = _pack({"v": VERSION, "rid": rid, "epoch": epoch, "seq": seq,
                  "heartbeat_s": heartbeat_s})
    body = b"".join((bytes((head[0] + 1,)), head[1:], _VALUE_KEY, packed_value))  # fixmap 5→6
    if len(body) > max_bytes:
        raise codec.CodecError(f"message of {len(body)} bytes exceeds "
                               f"max_message_bytes={max_bytes}")
    return body


_VALUE_KEY = codec.pack("value")


def encode_snapshot(rid: str | None, epoch: str, seq: int, value: dict,
                    heartbeat_s: float | None = None, *,
                    max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> bytes:
    return _pack({"v": VERSION, "rid": rid, "epoch": epoch, "seq": seq, "value": value,
                  "heartbeat_s": heartbeat_s}, max_bytes=max_bytes)


def _map(body: bytes, max_bytes: int) -> dict:
    message = _unpack(body, max_bytes=max_bytes)
    if message.__class__ is not dict:
        raise ProtocolError(f"expected a state message map, got {type(message).__name__}")
    _version(message)
    return message


def _version(message: dict) -> None:
    if message.get("v") != VERSION:
        raise ProtocolError(f"unsupported state protocol version {message.get('v')!r} "
                            f"(this side speaks {VERSION})")


def _position(message: dict) -> tuple[str, int]:
    epoch, seq = message.get("epoch"), message.get("seq")
    if epoch.__class__ is not str or seq.__class__ is not int or seq < 0:
        raise ProtocolError(f"expected a str epoch and an int seq >= 0, got "
                            f"{type(epoch).__name__} {epoch!r} and {type(seq).__name__} {seq!r}")
    return epoch, seq


def _interval(message: dict) -> float | None:
    value = message.get("heartbeat_s")
    if value is None:
        return None
    # Bounded: the in side turns it into timers and poll timeouts (NaN would spin the loop,
    # 1e300 overflow the poll).
    if value.__class__ not in (float, int) or not 0 < value <= MAX_HEARTBEAT_S:
        raise ProtocolError(f"heartbeat_s must be a number in (0, {MAX_HEARTBEAT_S:g}], "
                            f"got {value!r}")
    return float(value)


def decode_message(body: bytes, *, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
                   ) -> Update | Heartbeat:
    """An update (it has `args`) or a heartbeat (it has none), from the publisher socket.

    On the hot path of every in-state: a well-formed update is recognised with a few
    identity checks and built without the NamedTuple constructor's Python frame.
    """
    message = _unpack(body, max_bytes=max_bytes)
    if message.__class__ is dict and message.get("v") == VERSION:
        epoch, seq, args = message.get("epoch"), message.get("seq"), message.get("args")
        is_snapshot = message.get("is_snapshot", False)
        workflow_id = message.get("workflow_id")
        if (epoch.__class__ is str and seq.__class__ is int and seq >= 0
                and args.__class__ is dict and is_snapshot.__class__ is bool
                and (workflow_id is None or workflow_id.__class__ is str)):
            return _new_tuple(Update, (epoch, seq, is_snapshot, args, workflow_id))
    return _decode_other(message)


def _decode_other(message: Any) -> Update | Heartbeat:
    """A heartbeat, or the precise reason why a body is not a valid update."""
    if message.__class__ is not dict:
        raise ProtocolError(f"expected a state message map, got {type(message).__name__}")
    _version(message)
    epoch, seq = _position(message)
    if "args" not in message:
        return Heartbeat(epoch, seq, _interval(message))
    args = message["args"]
    is_snapshot = message.get("is_snapshot", False)
    if args.__class__ is not dict or is_snapshot.__class__ is not bool:
        raise ProtocolError(f"update: expected a map of args and a bool is_snapshot, got "
                            f"{type(args).__name__} and {type(is_snapshot).__name__}")
    raise ProtocolError("update: workflow_id must be a string")


def decode_snapshot_request(body: bytes, *, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
                            ) -> SnapshotRequest:
    message = _map(body, max_bytes)
    rid = message.get("rid")
    if rid.__class__ is not str:
        raise ProtocolError(f"snapshot request: rid must be a string, got {type(rid).__name__}")
    return SnapshotRequest(rid, _count(message, "window", 1), _count(message, "next", 0))


_MAX_COUNT = 2 ** 31


def _count(message: dict, key: str, least: int) -> int | None:
    value = message.get(key)
    if value is None:
        return None
    if value.__class__ is not int or not least <= value < _MAX_COUNT:
        raise ProtocolError(f"{key} must be an int in [{least}, {_MAX_COUNT}), got {value!r}")
    return value


def decode_snapshot(body: bytes, *, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> Snapshot:
    message = _map(body, max_bytes)
    epoch, seq = _position(message)
    rid, value = message.get("rid"), message.get("value")
    if value.__class__ is not dict:
        raise ProtocolError(f"snapshot: value must be a map, got {type(value).__name__}")
    if rid is not None and rid.__class__ is not str:
        raise ProtocolError("snapshot: rid must be a string")
    part, parts = _count(message, "part", 0), _count(message, "parts", 1)
    if parts is not None and (part is None or part != parts - 1):  # only the last says
        raise ProtocolError(f"snapshot: part {part!r} cannot end {parts!r} parts")
    return Snapshot(rid, epoch, seq, value, _interval(message), part, parts)
