"""The ext types of the wire codec: their codes and fixed byte layouts.

Part of the wire format (see `codec`): codes are never renumbered, layouts never change.
Decoders raise ordinary exceptions on bad payloads; `codec` turns them into CodecError.
"""

from __future__ import annotations

import struct
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from uuid import UUID

from msgpack import ExtType

# ``ExtType(code, data)`` validates its fields in Python (~0.5 us, more than packing a small
# Decimal); the encoders here always pass an int code and bytes, so they build the
# namedtuple directly. The C packer accepts it like any ExtType.
_tuple_new = tuple.__new__

# Ext type codes. Part of the wire format: never renumber.
EXT_DECIMAL = 1
EXT_DATETIME = 2
EXT_DATE = 3
EXT_TIME = 4
EXT_TIMEDELTA = 5
EXT_UUID = 6
EXT_SET = 7
EXT_FROZENSET = 8
EXT_TUPLE = 9


# Fixed-size layouts (big-endian). datetime/time carry ``fold`` in bit 24 of the
# microsecond field; the aware variants append the UTC offset in microseconds.
_DATETIME = struct.Struct(">HBBBBBI")  # 11 bytes
_DATETIME_TZ = struct.Struct(">HBBBBBIq")  # 19 bytes
_DATE = struct.Struct(">HBB")  # 4 bytes
_TIME = struct.Struct(">BBBI")  # 7 bytes
_TIME_TZ = struct.Struct(">BBBIq")  # 15 bytes
_TIMEDELTA = struct.Struct(">iII")  # 12 bytes
_FOLD_SHIFT = 24
_MICROSECOND_MASK = (1 << _FOLD_SHIFT) - 1


# Fixed-offset timezones, shared (bounded, so hostile offsets cannot grow it without limit).
_TZ_CACHE: dict[int, timezone] = {0: timezone.utc}
_TZ_CACHE_MAX = 256


def _offset_us(offset: timedelta) -> int:
    return (offset.days * 86400 + offset.seconds) * 1_000_000 + offset.microseconds


def _tz(offset_us: int) -> timezone:
    tz = _TZ_CACHE.get(offset_us)
    if tz is None:
        tz = timezone(timedelta(microseconds=offset_us))
        if len(_TZ_CACHE) < _TZ_CACHE_MAX:
            _TZ_CACHE[offset_us] = tz
    return tz


def _ext(code: int, data: bytes) -> ExtType:
    return _tuple_new(ExtType, (code, data))


def encode_decimal(obj: Decimal) -> ExtType:
    return _tuple_new(ExtType, (EXT_DECIMAL, str(obj).encode("ascii")))


def encode_datetime(obj: datetime) -> ExtType:
    offset = obj.utcoffset()
    us = obj.microsecond | (obj.fold << _FOLD_SHIFT)
    if offset is None:
        data = _DATETIME.pack(
            obj.year, obj.month, obj.day, obj.hour, obj.minute, obj.second, us
        )
    else:
        data = _DATETIME_TZ.pack(
            obj.year, obj.month, obj.day, obj.hour, obj.minute, obj.second, us,
            _offset_us(offset),
        )
    return _tuple_new(ExtType, (EXT_DATETIME, data))


def encode_date(obj: date) -> ExtType:
    return _ext(EXT_DATE, _DATE.pack(obj.year, obj.month, obj.day))


def encode_time(obj: time) -> ExtType:
    offset = obj.utcoffset()
    us = obj.microsecond | (obj.fold << _FOLD_SHIFT)
    if offset is None:
        return _ext(EXT_TIME, _TIME.pack(obj.hour, obj.minute, obj.second, us))
    return _ext(
        EXT_TIME, _TIME_TZ.pack(obj.hour, obj.minute, obj.second, us, _offset_us(offset))
    )


def encode_timedelta(obj: timedelta) -> ExtType:
    return _ext(EXT_TIMEDELTA, _TIMEDELTA.pack(obj.days, obj.seconds, obj.microseconds))


def encode_uuid(obj: UUID) -> ExtType:
    return _ext(EXT_UUID, obj.bytes)


def decode_decimal(data: bytes) -> Decimal:
    return Decimal(data.decode("ascii"))


def decode_datetime(data: bytes) -> datetime:
    if len(data) == 11:
        y, mo, d, h, mi, s, us = _DATETIME.unpack(data)
        tz = None
    elif len(data) == 19:
        y, mo, d, h, mi, s, us, off = _DATETIME_TZ.unpack(data)
        tz = _tz(off)
    else:
        raise ValueError(f"expected 11 or 19 bytes, got {len(data)}")
    return datetime(y, mo, d, h, mi, s, us & _MICROSECOND_MASK, tz, fold=us >> _FOLD_SHIFT)


def decode_date(data: bytes) -> date:
    return date(*_DATE.unpack(data))


def decode_time(data: bytes) -> time:
    if len(data) == 7:
        h, mi, s, us = _TIME.unpack(data)
        tz = None
    elif len(data) == 15:
        h, mi, s, us, off = _TIME_TZ.unpack(data)
        tz = _tz(off)
    else:
        raise ValueError(f"expected 7 or 15 bytes, got {len(data)}")
    return time(h, mi, s, us & _MICROSECOND_MASK, tz, fold=us >> _FOLD_SHIFT)


def decode_timedelta(data: bytes) -> timedelta:
    days, seconds, microseconds = _TIMEDELTA.unpack(data)
    if seconds >= 86400 or microseconds >= 1_000_000:
        raise ValueError("seconds or microseconds out of their normalised range")
    return timedelta(days, seconds, microseconds)


def decode_uuid(data: bytes) -> UUID:
    return UUID(bytes=data)


# The scalar types with an ext code, in an order where a subclass comes before its base
# (datetime before date): what the codec's encoder and decoder tables start from.
SCALAR_ENCODERS = {
    Decimal: encode_decimal,
    datetime: encode_datetime,
    date: encode_date,
    time: encode_time,
    timedelta: encode_timedelta,
    UUID: encode_uuid,
}
SCALAR_DECODERS = {
    EXT_DECIMAL: decode_decimal,
    EXT_DATETIME: decode_datetime,
    EXT_DATE: decode_date,
    EXT_TIME: decode_time,
    EXT_TIMEDELTA: decode_timedelta,
    EXT_UUID: decode_uuid,
}
