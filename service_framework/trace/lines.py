"""One trace event as one line of tagged JSON, written fast (SPEC §12).

`event_record` is the reference form of an event (a dict of plain JSON values, through
`tagged_json`); `event_line` writes the same thing as text on the hot path of every
recorded message, with the common shapes spelled out by hand. The two always agree
(tests/test_trace_format.py checks it on every codec value).
"""

from __future__ import annotations

import json
import json.encoder
from decimal import Decimal
from typing import Any, Mapping

from ..events import Event
from . import tagged_json
from .tagged_json import _Real

__all__ = ["event_record", "event_line", "json_line", "tagged"]


def _json_line_encoder():
    """One-line JSON, ASCII only (no line separator can hide in a string), no NaN.

    The C encoder is called directly: `json.JSONEncoder.encode` builds a new one per call,
    which costs more than encoding a small event.
    """
    make_encoder = json.encoder.c_make_encoder
    if make_encoder is None:  # not CPython
        return json.JSONEncoder(ensure_ascii=True, allow_nan=False, separators=(",", ":"),
                                check_circular=False).encode

    def refuse(value: Any) -> Any:
        raise TypeError(f"not JSON: {type(value).__qualname__}")

    encode = make_encoder(None, refuse, json.encoder.encode_basestring_ascii, None, ":", ",",
                          False, False, False)
    return lambda value: "".join(encode(value, 0))


json_line = _json_line_encoder()  # plain JSON values -> one line of text, without its newline
_string = json.encoder.encode_basestring_ascii


def tagged(value: Any) -> Any:
    """`tagged_json.to_jsonable`; what JSON cannot hold at all is kept as its repr.

    Only external targets see values that never crossed the codec: recording must not
    stop the service for them.
    """
    try:
        return tagged_json.to_jsonable(value)
    except (TypeError, ValueError, RecursionError):
        if isinstance(value, dict):
            return {"$map": [[tagged(k), tagged(v)] for k, v in value.items()]}
        if isinstance(value, (list, tuple)):
            return [tagged(item) for item in value]
        return f"<unrepresentable {type(value).__qualname__}: {value!r}>"


def event_record(event: Event, t: float | None = None) -> dict:
    """The JSON-ready form of an event, the shape of one trace line."""
    record = {"t": round(event.t if t is None else t, 6), "dir": event.dir, "kind": event.kind,
              "name": event.name, "workflow_id": event.workflow_id}
    for key, value in event.payload.items():
        record[key] = tagged(value)
    return record


_int = int.__repr__
_float = float.__repr__
_heads: dict[tuple[str, str, str], str] = {}
_keys: dict[str, str] = {}  # '"key":' of the keys seen, up to _MAX_KEYS of them
_MAX_KEYS = 4096


def _key(key: str) -> str:
    text = _keys.get(key)
    if text is None:
        text = _string(key) + ":"
        if len(_keys) < _MAX_KEYS:
            _keys[key] = text
    return text


def _json(value: Any) -> str:
    """JSON text of `value` in tagged form, as `tagged_json` writes it.

    On the hot path of every message: the common shapes (dicts with str keys holding str,
    int, bool, None, finite floats, Decimals and datetimes) are written here directly;
    anything else goes through `tagged_json.to_jsonable`.
    """
    cls = value.__class__
    if cls is dict:
        parts = []
        key = ""
        for key, item in value.items():
            if key.__class__ is not str:
                return json_line(tagged(value))
            kind = item.__class__
            if kind is str:
                text = _string(item)
            elif kind is int:
                text = _int(item)
            elif kind is Decimal:
                text = '{"$decimal":"' + str(item) + '"}'
            elif kind is _Real.datetime:
                text = '{"$datetime":"' + item.isoformat() + '"}'
            elif kind is bool:
                text = "true" if item else "false"
            elif item is None:
                text = "null"
            elif kind is float and item - item == 0.0:
                text = _float(item)
            else:
                text = _json(item)
            parts.append((_keys.get(key) or _key(key)) + text)
        if len(parts) == 1 and key[:1] == "$":  # tagged_json escapes it: never a tag
            return json_line(tagged(value))
        return "{" + ",".join(parts) + "}"
    if cls is str:
        return _string(value)
    if cls is int:
        return _int(value)
    if cls is list:
        return "[" + ",".join([_json(item) for item in value]) + "]"
    return json_line(tagged(value))


def event_line(event: Event, t: float, payload: Mapping | None = None) -> str:
    """One trace line (without its newline): `event_record` as JSON, built for speed.

    `payload`, when given, stands for `event.payload` (the recorder's snapshot of it).
    """
    head = _heads.get((event.dir, event.kind, event.name))
    if head is None:
        head = _heads.setdefault((event.dir, event.kind, event.name), (
            f',"dir":{_string(event.dir)},"kind":{_string(event.kind)},'
            f'"name":{_string(event.name)},"workflow_id":'))
    parts = ['{"t":', _float(round(t, 6)), head, _string(event.workflow_id)]
    for key, value in (event.payload if payload is None else payload).items():
        parts.append("," + _string(key) + ":" + _json(value))
    parts.append("}")
    return "".join(parts)
