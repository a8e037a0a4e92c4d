"""Tagged JSON: the values the wire codec carries, as plain JSON that round-trips exactly.

Traces are JSON Lines (one event per line) so that people can read, grep and diff them, but
the messages they record hold values JSON has no type for. Each such value becomes a
single-key object whose key is a ``$`` tag:

============================  =============================================================
value                         JSON
============================  =============================================================
``Decimal('1.50')``           ``{"$decimal": "1.50"}`` (the exact digits, also NaN/Infinity)
``datetime``                  ``{"$datetime": "2030-01-01T00:00:00+00:00"}`` (ISO 8601,
                              offset only when aware; the offset is kept to the microsecond)
``date`` / ``time``           ``{"$date": "2030-01-01"}`` / ``{"$time": "12:00:00+01:00"}``
``timedelta``                 ``{"$timedelta": [days, seconds, microseconds]}``
``UUID``                      ``{"$uuid": "…"}``
``bytes``                     ``{"$bytes": "<base64>"}``
``tuple``                     ``{"$tuple": [...]}``
``set`` / ``frozenset``       ``{"$set": [...]}`` / ``{"$frozenset": [...]}`` (items sorted
                              by their JSON text, so a trace does not depend on hash seeds)
``nan``, ``inf``, ``-inf``    ``{"$float": "nan"}``, ``{"$float": "inf"}``, ``{"$float": "-inf"}``
dict with a non-str key       ``{"$map": [[key, value], ...]}`` (insertion order kept)
dict ``{"$x": v}``            ``{"$dict": {"$x": v}}`` -- a plain dict whose only key starts
                              with ``$`` is escaped, so it is never mistaken for a tag
============================  =============================================================

Everything else (``None``, ``bool``, ``int``, finite ``float``, ``str``, ``list``, dicts with
``str`` keys) is itself. Subclasses degrade to their base type exactly as in the codec
(``IntEnum`` -> ``int``, ``OrderedDict`` -> ``dict``, ``bytearray`` -> ``bytes``), and an
aware ``datetime``/``time`` comes back with a fixed-offset ``timezone``; the ``fold``
attribute is not kept (it does not take part in ``==`` for naive or fixed-offset values).
"""

from __future__ import annotations

import base64
import json
import math
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any, Callable
from uuid import UUID

__all__ = ["to_jsonable", "from_jsonable", "dumps", "loads"]


class _Real:
    """The real `datetime` and `date` classes, where freezegun cannot swap them.

    While time is frozen (the test harness freezes it), freezegun replaces every module
    attribute that *is* one of these classes, whatever its name (``_REAL = datetime`` too),
    with its fake subclass, whose constructors return fakes. Class attributes are left
    alone, so values are built from these. Taken from ``min``, an instance of the real class
    even when this module is imported while time is frozen.
    """

    datetime = type(datetime.min)
    date = type(date.min)


def _float(obj: float) -> Any:
    if math.isfinite(obj):
        return obj
    return {"$float": "nan" if obj != obj else ("inf" if obj > 0 else "-inf")}


def _sorted_items(items: Any) -> list:
    """JSON forms of a set's items in a stable order (set iteration order depends on hashing)."""
    converted = [to_jsonable(item) for item in items]
    if len(converted) < 2:
        return converted
    keyed = [(_dumps_json(item), item) for item in converted]
    keyed.sort(key=lambda pair: pair[0])
    return [item for _, item in keyed]


def _dict(obj: dict) -> Any:
    for key in obj:
        if type(key) is not str:
            return {"$map": [[to_jsonable(k), to_jsonable(v)] for k, v in obj.items()]}
    converted = {k: to_jsonable(v) for k, v in obj.items()}
    if len(converted) == 1 and next(iter(converted)).startswith("$"):
        return {"$dict": converted}
    return converted


def _identity(obj: Any) -> Any:
    return obj


_ENCODERS: dict[type, Callable[[Any], Any]] = {
    str: _identity,
    int: _identity,
    bool: _identity,
    type(None): _identity,
    float: _float,
    dict: _dict,
    list: lambda obj: [to_jsonable(item) for item in obj],
    tuple: lambda obj: {"$tuple": [to_jsonable(item) for item in obj]},
    set: lambda obj: {"$set": _sorted_items(obj)},
    frozenset: lambda obj: {"$frozenset": _sorted_items(obj)},
    Decimal: lambda obj: {"$decimal": str(obj)},
    _Real.datetime: lambda obj: {"$datetime": obj.isoformat()},
    _Real.date: lambda obj: {"$date": obj.isoformat()},
    time: lambda obj: {"$time": obj.isoformat()},
    timedelta: lambda obj: {"$timedelta": [obj.days, obj.seconds, obj.microseconds]},
    UUID: lambda obj: {"$uuid": str(obj)},
    bytes: lambda obj: {"$bytes": base64.b64encode(obj).decode("ascii")},
}

# For subclasses: the base to convert to, a subclass before its base (datetime < date).
_BASES: tuple[tuple[type, Callable[[Any], Any]], ...] = (
    (dict, dict),
    (list, list),
    (str, str.__str__),  # exact str, even for a str Enum whose __str__ is overridden
    (int, int),
    (float, float),
    (bytes, bytes),
    (bytearray, bytes),
    (memoryview, bytes),
    (tuple, tuple),
    (frozenset, frozenset),
    (set, set),
    (Decimal, Decimal),
    (_Real.datetime, lambda obj: _Real.datetime.combine(obj.date(), obj.timetz())),  # + fold
    (_Real.date, lambda obj: _Real.date(obj.year, obj.month, obj.day)),
    (time, lambda obj: time(
        obj.hour, obj.minute, obj.second, obj.microsecond, obj.tzinfo, fold=obj.fold)),
    (timedelta, lambda obj: timedelta(obj.days, obj.seconds, obj.microseconds)),
    (UUID, lambda obj: UUID(int=obj.int)),
)


def to_jsonable(obj: Any) -> Any:
    """Turn a value the codec carries into plain JSON values (dict/list/str/int/float/...).

    Raises ``TypeError`` naming the type for anything the codec would not carry either.
    """
    encoder = _ENCODERS.get(type(obj))
    if encoder is not None:
        return encoder(obj)
    for base, convert in _BASES:
        if isinstance(obj, base):
            value = convert(obj)
            encoder = _ENCODERS.get(type(value))
            if encoder is not None:  # else a conversion kept the subclass: give up below
                return encoder(value)
            break
    raise TypeError(f"cannot convert object of type {type(obj).__qualname__} to tagged JSON")


def _set_items(value: Any) -> list:
    return [from_jsonable(item) for item in _expect(value, list, "$set")]


def _expect(value: Any, kind: type, tag: str) -> Any:
    if type(value) is not kind:
        raise ValueError(f"tagged JSON {tag!r} expects a {kind.__name__}, got {value!r}")
    return value


def _dec_float(value: Any) -> float:
    text = _expect(value, str, "$float")
    if text not in ("nan", "inf", "-inf"):
        raise ValueError(f"tagged JSON '$float' expects 'nan', 'inf' or '-inf', got {text!r}")
    return float(text)


def _dec_timedelta(value: Any) -> timedelta:
    parts = _expect(value, list, "$timedelta")
    if len(parts) != 3 or any(type(part) is not int for part in parts):
        raise ValueError(f"tagged JSON '$timedelta' expects [days, seconds, microseconds], "
                         f"got {value!r}")
    return timedelta(*parts)


def _dec_map(value: Any) -> dict:
    result = {}
    for pair in _expect(value, list, "$map"):
        if type(pair) is not list or len(pair) != 2:
            raise ValueError(f"tagged JSON '$map' expects [key, value] pairs, got {pair!r}")
        result[from_jsonable(pair[0])] = from_jsonable(pair[1])
    return result


def _dec_dict(value: Any) -> dict:
    return {k: from_jsonable(v) for k, v in _expect(value, dict, "$dict").items()}


def _split_offset(text: str, start: int) -> tuple[str, timezone | None]:
    """Split an ISO 8601 time-of-day text into its local part and its UTC offset.

    Parsed here rather than by ``fromisoformat`` because CPython 3.11 drops the
    microseconds of an offset whose hours, minutes and seconds are all zero
    (``+00:00:00.000001`` parses as UTC), and the trace must round-trip exactly.
    """
    if text.endswith("Z"):
        return text[:-1], timezone.utc
    cut = max(text.rfind("+", start), text.rfind("-", start))
    if cut < 0:
        return text, None
    sign = -1 if text[cut] == "-" else 1
    fields = text[cut + 1:].split(":")
    if not 2 <= len(fields) <= 3 or not all(field[:2].isdigit() for field in fields):
        raise ValueError(f"Invalid isoformat string: {text!r}")
    seconds = Decimal(fields[2]) if len(fields) == 3 else Decimal(0)
    offset = timedelta(hours=int(fields[0]), minutes=int(fields[1]),
                       microseconds=int(seconds * 1_000_000))
    return text[:cut], timezone(sign * offset)


def _dec_datetime(value: Any) -> datetime:
    local, tz = _split_offset(_expect(value, str, "$datetime"), 10)  # after the date's '-'s
    return _Real.datetime.fromisoformat(local).replace(tzinfo=tz)


def _dec_time(value: Any) -> time:
    local, tz = _split_offset(_expect(value, str, "$time"), 0)
    return time.fromisoformat(local).replace(tzinfo=tz)


_DECODERS: dict[str, Callable[[Any], Any]] = {
    "$decimal": lambda value: Decimal(_expect(value, str, "$decimal")),
    "$datetime": _dec_datetime,
    "$date": lambda value: _Real.date.fromisoformat(_expect(value, str, "$date")),
    "$time": _dec_time,
    "$timedelta": _dec_timedelta,
    "$uuid": lambda value: UUID(_expect(value, str, "$uuid")),
    "$bytes": lambda value: base64.b64decode(_expect(value, str, "$bytes"), validate=True),
    "$tuple": lambda value: tuple(from_jsonable(item) for item in _expect(value, list, "$tuple")),
    "$set": lambda value: set(_set_items(value)),
    "$frozenset": lambda value: frozenset(
        from_jsonable(item) for item in _expect(value, list, "$frozenset")
    ),
    "$float": _dec_float,
    "$map": _dec_map,
    "$dict": _dec_dict,
}


def from_jsonable(obj: Any) -> Any:
    """Inverse of `to_jsonable`: rebuild the original values from their tags.

    A single-key object whose key starts with ``$`` must be a known tag (a plain dict like
    that was escaped by `to_jsonable`), else ``ValueError`` -- a typo in a hand-edited trace
    is reported instead of silently becoming a dict.
    """
    cls = type(obj)
    if cls is list:
        return [from_jsonable(item) for item in obj]
    if cls is dict:
        if len(obj) == 1:
            (key, value), = obj.items()
            if key.startswith("$"):
                decoder = _DECODERS.get(key)
                if decoder is None:
                    raise ValueError(f"unknown tagged JSON tag {key!r}")
                try:
                    return decoder(value)
                except (ArithmeticError, TypeError) as exc:  # decimal.InvalidOperation, unhashable
                    raise ValueError(f"invalid tagged JSON {key!r} value {value!r}: {exc}") from exc
        return {k: from_jsonable(v) for k, v in obj.items()}
    return obj


def _dumps_json(obj: Any) -> str:
    # ensure_ascii keeps one event on one line for every line splitter (U+2028, U+0085 are
    # escaped too); allow_nan=False because non-finite floats are always tagged.
    return json.dumps(obj, ensure_ascii=True, allow_nan=False, separators=(",", ":"))


def dumps(obj: Any) -> str:
    """One line of JSON (no newline) that `loads` turns back into an equal value of equal types."""
    return _dumps_json(to_jsonable(obj))


def loads(s: str) -> Any:
    """Parse one line written by `dumps` back into the original value."""
    return from_jsonable(json.loads(s))
