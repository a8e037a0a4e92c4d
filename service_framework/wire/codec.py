"""The wire codec: msgpack plus ext types for the Python values services exchange.

Every body that crosses a socket (and every message on the memory bus, so that tests see
the same failures as production) goes through `pack` / `unpack`. The codec is on the hot
path of every request, reply, publication and state update, so it is a thin layer over
msgpack's C implementation: plain msgpack types are packed natively, and only the types
msgpack does not know reach the Python `default` / `ext_hook` callbacks.

What crosses the wire, and comes back equal *and of the same type*:

* ``None``, ``bool``, ``int`` (-2**63 .. 2**64-1), ``float``, ``str``, ``bytes``, ``list``,
  ``dict`` (keys of any supported hashable type: ``{Decimal: Decimal}`` order books work);
* as ext types: ``Decimal``, ``datetime``, ``date``, ``time``, ``timedelta``, ``UUID``,
  ``set``, ``frozenset`` and ``tuple`` (items of tuples and sets go through the codec too).

Documented degradations (the value stays ``==``, only the Python type or tz object changes):

* subclasses are sent as their base type: dict/list/tuple/set subclasses (``OrderedDict``,
  named tuples) as the plain container, ``IntEnum``/``str`` enums as ``int``/``str``,
  ``bytearray``/``memoryview`` as ``bytes``, freezegun's ``FakeDatetime`` as ``datetime``;
* an aware ``datetime``/``time`` keeps its UTC offset exactly (to the microsecond) but its
  tzinfo comes back as a fixed-offset ``datetime.timezone`` without a name: a ``ZoneInfo``
  degrades to the offset it had at that instant. A ``time`` whose tzinfo gives no offset
  without a date (e.g. a ``ZoneInfo``) is naive by Python's own definition and is sent naive;
* a standard msgpack timestamp (ext -1) sent by a non-Python peer decodes as an aware UTC
  ``datetime``.

Nothing is ever pickled or evaluated. Every failure -- an unencodable value, garbage or
truncated input, an unknown ext code, trailing data, a body over ``max_bytes``, hostile
nesting -- raises `CodecError` (a ``ValueError``) with a message that says what was wrong.
Limits on hostile input: the body length is checked before decoding; msgpack sizes every
``max_*_len`` from the body length (itself at most ``max_bytes``), so a header cannot claim
more elements than the body could hold; plain containers nest at most as deep as msgpack's
fixed parse stack; tuple/set ext payloads nest at most `MAX_EXT_DEPTH` deep (checked the
same way on both sides, so whatever `pack` accepts, `unpack` accepts).

The ext codes and the byte layouts of the scalar ext types live in `_ext_types`.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Callable

import msgpack
from msgpack import ExtType
from msgpack.exceptions import ExtraData, FormatError, StackError

from service_framework.errors import CodecError

from .ext_types import (
    EXT_DATE,
    EXT_DATETIME,
    EXT_DECIMAL,
    EXT_FROZENSET,
    EXT_SET,
    EXT_TIME,
    EXT_TIMEDELTA,
    EXT_TUPLE,
    EXT_UUID,
    SCALAR_DECODERS,
    SCALAR_ENCODERS,
)

__all__ = ["DEFAULT_MAX_MESSAGE_BYTES", "MAX_EXT_DEPTH", "CodecError", "pack", "unpack"]

DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024
"""Default upper bound of one message body (16 MiB), on both sides of the wire."""

MAX_EXT_DEPTH = 64
"""How deep tuples/sets may nest inside each other (each level is a nested msgpack payload)."""


_EXT_NAMES = {
    EXT_DECIMAL: "Decimal",
    EXT_DATETIME: "datetime",
    EXT_DATE: "date",
    EXT_TIME: "time",
    EXT_TIMEDELTA: "timedelta",
    EXT_UUID: "UUID",
    EXT_SET: "set",
    EXT_FROZENSET: "frozenset",
    EXT_TUPLE: "tuple",
}

_SUPPORTED = (
    "None, bool, int (64-bit), float, str, bytes, list, dict, tuple, set, frozenset, "
    "Decimal, datetime, date, time, timedelta, UUID"
)

# Buffer recycling: building a Packer allocates its buffer, which costs more than packing a
# typical envelope. Packers are pooled per nesting depth (a Packer is not re-entrant, and the
# depth is baked into its ``default``); list.pop/append are atomic, so this is thread-safe
# without locks. A Packer that failed, or whose buffer grew large, is not put back.
_POOL_MAX = 16
_POOL_KEEP_BYTES = 1024 * 1024
_PACKER_BUF_SIZE = 4096

_UNPACK_OPTIONS: dict[str, Any] = {"strict_map_key": False, "raw": False, "timestamp": 3}

_unpackb = msgpack.unpackb
# ``ExtType(code, data)`` validates its fields in Python (~0.5 us, more than packing a small
# Decimal); the encoders below always pass an int code and bytes, so they build the
# namedtuple directly. The C packer accepts it like any ExtType.
_tuple_new = tuple.__new__

# --------------------------------------------------------------------------- encoding


def _cannot_encode(obj: Any) -> CodecError:
    return CodecError(
        f"cannot encode object of type {type(obj).__qualname__} (supported: {_SUPPORTED})"
    )


def _array_header(length: int) -> bytes:
    """The msgpack header of an array of `length` items."""
    if length < 16:
        return bytes((0x90 | length,))
    if length < 0x10000:
        return b"\xdc" + length.to_bytes(2, "big")
    return b"\xdd" + length.to_bytes(4, "big")


def _make_default(depth: int) -> Callable[[Any], Any]:
    """The msgpack ``default`` for payloads nested `depth` tuple/set levels deep."""
    nested = depth + 1

    def enc_items(code: int, obj: Any) -> ExtType:
        if nested > MAX_EXT_DEPTH:
            raise CodecError(
                f"cannot encode: tuples/sets nested more than {MAX_EXT_DEPTH} levels deep"
            )
        return _tuple_new(ExtType, (code, _pack_at(nested, list(obj))))

    def enc_tuple(obj: tuple) -> ExtType:
        return enc_items(EXT_TUPLE, obj)

    def enc_sorted_items(code: int, obj: Any) -> ExtType:
        # Set iteration follows hashes, which vary per process (PYTHONHASHSEED): items go
        # out sorted by their encoding, so equal sets are equal bytes on every run.
        if nested > MAX_EXT_DEPTH:
            enc_items(code, obj)  # raises the depth error
        items = sorted(_pack_at(nested, item) for item in obj)
        return _tuple_new(ExtType, (code, _array_header(len(items)) + b"".join(items)))

    def enc_set(obj: set) -> ExtType:
        return enc_sorted_items(EXT_SET, obj)

    def enc_frozenset(obj: frozenset) -> ExtType:
        return enc_sorted_items(EXT_FROZENSET, obj)

    encoders: dict[type, Callable[[Any], Any]] = {
        **SCALAR_ENCODERS,
        tuple: enc_tuple,
        set: enc_set,
        frozenset: enc_frozenset,
    }
    # Subclasses, in an order where a subclass comes before its base (datetime < date).
    by_base: tuple[tuple[type, Callable[[Any], Any]], ...] = (
        (dict, dict),
        (list, list),
        (str, str.__str__),  # exact str, even for a str Enum whose __str__ is overridden
        (int, int),  # IntEnum / IntFlag -> int
        (float, float),
        (bytes, bytes),
        (tuple, enc_tuple),
        (frozenset, enc_frozenset),
        (set, enc_set),
        *SCALAR_ENCODERS.items(),
    )

    def default(obj: Any) -> Any:
        cls = type(obj)
        if cls is Decimal:  # the common case (prices, quantities, order-book keys), inlined
            return _tuple_new(ExtType, (EXT_DECIMAL, str(obj).encode("ascii")))
        encoder = encoders.get(cls)
        if encoder is not None:
            return encoder(obj)
        if cls is int:  # msgpack hands over ints it cannot represent
            raise CodecError(
                f"cannot encode int of {obj.bit_length()} bits: msgpack integers are limited "
                f"to the range -2**63 .. 2**64-1"
            )
        for base, convert in by_base:
            if isinstance(obj, base):
                return convert(obj)
        raise _cannot_encode(obj)

    return default


_DEFAULTS = [_make_default(depth) for depth in range(MAX_EXT_DEPTH + 1)]
_POOLS: list[list[msgpack.Packer]] = [[] for _ in range(MAX_EXT_DEPTH + 1)]


def _pack_at(depth: int, obj: Any) -> bytes:
    pool = _POOLS[depth]
    try:
        packer = pool.pop()
    except IndexError:
        packer = msgpack.Packer(
            default=_DEFAULTS[depth], strict_types=True, use_bin_type=True,
            buf_size=_PACKER_BUF_SIZE,
        )
    data = packer.pack(obj)  # on an exception the packer is dropped, not recycled
    if len(data) <= _POOL_KEEP_BYTES and len(pool) < _POOL_MAX:
        pool.append(packer)
    return data


def pack(obj: Any, *, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> bytes:
    """Encode `obj` as one msgpack body; raise `CodecError` if it cannot cross the wire.

    The size limit is checked on the packed bytes so that the sender, not the receiver,
    learns that a message is too big.
    """
    try:
        data = _pack_at(0, obj)
    except CodecError:
        raise
    except RecursionError as exc:
        raise CodecError("cannot encode: value nested too deeply") from exc
    except (ValueError, OverflowError, TypeError, UnicodeError) as exc:
        # msgpack's own refusals: nesting over its recursion limit, oversized bytes,
        # strings that are not valid Unicode (lone surrogates), ints out of range.
        raise CodecError(f"cannot encode: {type(exc).__name__}: {exc}") from exc
    if len(data) > max_bytes:
        raise CodecError(f"message of {len(data)} bytes exceeds max_message_bytes={max_bytes}")
    return data


# --------------------------------------------------------------------------- decoding


def _bad_payload(code: int, exc: Exception) -> CodecError:
    return CodecError(
        f"cannot decode message: invalid {_EXT_NAMES[code]} payload ({type(exc).__name__}: {exc})"
    )


# Decimals decoded lately, by their bytes: prices and sizes repeat (a book's sizes, a
# tick's price), and a Decimal is immutable, so one object serves every copy. Bounded:
# short payloads only, and cleared when full.
DECIMAL_CACHE_ENTRIES = 4096
DECIMAL_CACHE_KEY_BYTES = 24
_DECIMALS: dict[bytes, Decimal] = {}


def _make_ext_hook(depth: int) -> Callable[[int, bytes], Any]:
    """The msgpack ``ext_hook`` for payloads nested `depth` tuple/set levels deep."""
    nested = depth + 1

    def items(data: bytes) -> list:
        if nested > MAX_EXT_DEPTH:
            raise CodecError(
                f"cannot decode message: tuples/sets nested more than {MAX_EXT_DEPTH} levels deep"
            )
        value = _unpackb(data, ext_hook=_EXT_HOOKS[nested], **_UNPACK_OPTIONS)
        if type(value) is not list:
            raise ValueError(f"expected an array, got {type(value).__name__}")
        return value

    def dec_tuple(data: bytes) -> tuple:
        return tuple(items(data))

    def dec_set(data: bytes) -> set:
        return set(items(data))

    def dec_frozenset(data: bytes) -> frozenset:
        return frozenset(items(data))

    decoders: dict[int, Callable[[bytes], Any]] = {
        **SCALAR_DECODERS,
        EXT_SET: dec_set,
        EXT_FROZENSET: dec_frozenset,
        EXT_TUPLE: dec_tuple,
    }

    decimals = _DECIMALS

    def ext_hook(code: int, data: bytes) -> Any:
        if code == EXT_DECIMAL:  # the common case, inlined
            value = decimals.get(data)
            if value is not None:
                return value
            try:
                value = Decimal(data.decode("ascii"))
            except Exception as exc:  # UnicodeDecodeError, InvalidOperation
                raise _bad_payload(code, exc) from exc
            if len(data) <= DECIMAL_CACHE_KEY_BYTES:
                if len(decimals) >= DECIMAL_CACHE_ENTRIES:
                    decimals.clear()
                decimals[data] = value
            return value
        decoder = decoders.get(code)
        if decoder is None:
            raise CodecError(f"cannot decode message: unknown ext type code {code}")
        try:
            return decoder(data)
        except CodecError:
            raise
        except Exception as exc:  # struct.error, ValueError, TypeError (unhashable item)...
            raise _bad_payload(code, exc) from exc

    return ext_hook


_EXT_HOOKS = [_make_ext_hook(depth) for depth in range(MAX_EXT_DEPTH + 1)]
_EXT_HOOK = _EXT_HOOKS[0]


def unpack(data: bytes, *, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> Any:
    """Decode one msgpack body from `data` (bytes-like); raise `CodecError` on any bad input.

    The length is checked before anything is parsed, so an oversized body costs nothing.
    Whatever the bytes are, the only exception that leaves is `CodecError`.
    """
    size = len(data)
    if size > max_bytes:
        raise CodecError(f"message of {size} bytes exceeds max_message_bytes={max_bytes}")
    try:
        return _unpackb(
            data, ext_hook=_EXT_HOOK, strict_map_key=False, raw=False, timestamp=3
        )
    except CodecError:
        raise
    except ExtraData as exc:
        raise CodecError(
            f"cannot decode message: {len(exc.extra)} bytes of trailing data after the body"
        ) from exc
    except StackError as exc:
        raise CodecError("cannot decode message: containers nested too deeply") from exc
    except FormatError as exc:
        raise CodecError("cannot decode message: not valid msgpack") from exc
    except RecursionError as exc:
        raise CodecError("cannot decode message: value nested too deeply") from exc
    except Exception as exc:
        if size == 0:
            raise CodecError("cannot decode message: empty body") from exc
        text = str(exc)
        if "incomplete input" in text:
            raise CodecError(
                f"cannot decode message: truncated (incomplete input, {size} bytes)"
            ) from exc
        raise CodecError(f"cannot decode message: {type(exc).__name__}: {text}") from exc
