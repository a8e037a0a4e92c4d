"""The wire codec: exact round trips of every carried type, and CodecError for every bad input."""

from __future__ import annotations

import collections
import enum
import math
import struct
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any, NamedTuple
from uuid import UUID
from zoneinfo import ZoneInfo

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service_framework.errors import ServiceFrameworkError
from service_framework.wire.codec import (
    DEFAULT_MAX_MESSAGE_BYTES,
    MAX_EXT_DEPTH,
    CodecError,
    pack,
    unpack,
)

# --------------------------------------------------------------------------- strategies
# (also imported by test_tagged_json.py)

# Fixed-offset zones, including offsets with seconds and microseconds (Python allows them).
fixed_timezones = st.one_of(
    st.just(timezone.utc),
    st.timedeltas(
        min_value=timedelta(hours=-23, minutes=-59, seconds=-59, microseconds=-999999),
        max_value=timedelta(hours=23, minutes=59, seconds=59, microseconds=999999),
    ).map(timezone),
)
naive_or_fixed = st.none() | fixed_timezones


def _scalars(*, allow_nan: bool) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**63), max_value=2**64 - 1),
        st.floats(allow_nan=allow_nan, allow_infinity=True),
        st.text(),
        st.binary(),
        st.decimals(allow_nan=allow_nan, allow_infinity=True),
        st.datetimes(timezones=naive_or_fixed),
        st.dates(),
        st.times(timezones=naive_or_fixed),
        st.timedeltas(),
        st.uuids(),
    )


# Hashable values: what may be a dict key or a set member. NaN is left out here because a
# NaN is not equal to itself, so a set or a key holding one cannot be compared after a trip.
hashables = st.recursive(
    _scalars(allow_nan=False),
    lambda inner: st.tuples(inner, inner) | st.lists(inner, max_size=4).map(tuple)
    | st.frozensets(inner, max_size=4),
    max_leaves=8,
)

values = st.recursive(
    _scalars(allow_nan=True),
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.lists(inner, max_size=5).map(tuple),
        st.sets(hashables, max_size=5),
        st.frozensets(hashables, max_size=5),
        st.dictionaries(st.text(max_size=5), inner, max_size=5),
        st.dictionaries(hashables, inner, max_size=5),
    ),
    max_leaves=25,
)

# When a set's uniqueness filter gives up on a draw, Hypothesis describes the (recursive,
# hence long) element strategy and warns about the length of that description. Harmless.
LONG_REPR = pytest.mark.filterwarnings("ignore:Generating overly large repr")
pytestmark = LONG_REPR


def assert_same(expected: Any, actual: Any, *, check_fold: bool = True, path: str = "$") -> None:
    """Equal AND of the same types, recursively (tuple is not list, set is not frozenset).

    Floats compare bit-for-bit in spirit (-0.0 is not 0.0, NaN matches NaN); Decimals compare
    by their exact text (Decimal('1.50') is not Decimal('1.5'); NaN matches NaN).
    """
    assert type(actual) is type(expected), f"{path}: {type(expected)} became {type(actual)}"
    if isinstance(expected, float):
        if math.isnan(expected):
            assert math.isnan(actual), f"{path}: {expected!r} != {actual!r}"
        else:
            assert expected == actual, f"{path}: {expected!r} != {actual!r}"
            assert math.copysign(1, expected) == math.copysign(1, actual), path
    elif isinstance(expected, Decimal):
        assert str(expected) == str(actual), f"{path}: {expected!r} != {actual!r}"
    elif isinstance(expected, (list, tuple)):
        assert len(expected) == len(actual), f"{path}: {expected!r} != {actual!r}"
        for index, (e, a) in enumerate(zip(expected, actual, strict=True)):
            assert_same(e, a, check_fold=check_fold, path=f"{path}[{index}]")
    elif isinstance(expected, dict):
        # Insertion order is kept, so pairs compare in order (this also copes with NaN keys).
        assert len(expected) == len(actual), f"{path}: {expected!r} != {actual!r}"
        for (ek, ev), (ak, av) in zip(expected.items(), actual.items(), strict=True):
            assert_same(ek, ak, check_fold=check_fold, path=f"{path}.key({ek!r})")
            assert_same(ev, av, check_fold=check_fold, path=f"{path}[{ek!r}]")
    elif isinstance(expected, (set, frozenset)):
        assert expected == actual, f"{path}: {expected!r} != {actual!r}"
        for e in expected:
            matches = [a for a in actual if a == e and type(a) is type(e)]
            assert len(matches) == 1, f"{path}: {e!r} ({type(e)}) missing from {actual!r}"
            assert_same(e, matches[0], check_fold=check_fold, path=f"{path}{{{e!r}}}")
    elif isinstance(expected, (datetime, time)):
        assert expected == actual, f"{path}: {expected!r} != {actual!r}"
        assert expected.utcoffset() == actual.utcoffset(), f"{path}: {expected!r} != {actual!r}"
        assert (expected.tzinfo is None) == (actual.tzinfo is None), path
        if check_fold:
            assert expected.fold == actual.fold, f"{path}: fold {expected!r} != {actual!r}"
    else:
        assert expected == actual, f"{path}: {expected!r} != {actual!r}"


# --------------------------------------------------------------------------- round trips


@settings(max_examples=400)
@given(values)
def test_every_carried_value_round_trips_exactly(value: Any) -> None:
    assert_same(value, unpack(pack(value)))


@given(values)
def test_unpack_accepts_bytes_like_bodies(value: Any) -> None:
    body = pack(value)
    assert_same(value, unpack(memoryview(body)))
    assert_same(value, unpack(bytearray(body)))


@pytest.mark.parametrize(
    "value",
    [
        {Decimal("100.25"): Decimal("1.50"), Decimal("99.75"): Decimal("0")},
        {(1, "a"): [1, 2], frozenset({1, 2}): (3,), datetime(2030, 1, 1): date(2030, 1, 2)},
        (1, [2, (3, {4, (5,)})]),
        [Decimal("NaN"), Decimal("-sNaN"), Decimal("-0"), Decimal("1E+5"), Decimal("-Infinity")],
        [float("nan"), float("inf"), float("-inf"), -0.0, 5e-324],
        [-(2**63), 2**64 - 1, 0, True, False, None],
        datetime(2030, 1, 1, 12, 30, 15, 999999, timezone(timedelta(hours=5, minutes=30))),
        datetime(1, 1, 1), datetime(9999, 12, 31, 23, 59, 59, 999999),
        time(23, 59, 59, 1, timezone(-timedelta(hours=23, microseconds=1))),
        timedelta(days=-999999999), timedelta.max, timedelta(microseconds=-1),
        UUID("12345678-1234-5678-1234-567812345678"),
        set(), frozenset(), (), {}, [], "", b"",
    ],
    ids=repr,
)
def test_examples_round_trip_exactly(value: Any) -> None:
    assert_same(value, unpack(pack(value)))


def test_fold_and_offset_microseconds_are_kept() -> None:
    tz = timezone(timedelta(hours=-3, seconds=7, microseconds=11))
    value = datetime(2021, 11, 7, 1, 30, 0, 5, tz, fold=1)
    result = unpack(pack(value))
    assert result.fold == 1
    assert result.utcoffset() == timedelta(hours=-3, seconds=7, microseconds=11)
    assert unpack(pack(time(1, 30, fold=1))).fold == 1


def test_zoneinfo_degrades_to_its_fixed_offset() -> None:
    paris = ZoneInfo("Europe/Paris")
    summer = datetime(2030, 7, 1, 12, 0, tzinfo=paris)
    result = unpack(pack(summer))
    assert result == summer
    assert type(result.tzinfo) is timezone
    assert result.utcoffset() == timedelta(hours=2)
    # A time's ZoneInfo has no offset without a date: Python calls such a time naive.
    assert unpack(pack(time(12, 0, tzinfo=paris))) == time(12, 0)


def test_standard_msgpack_timestamp_decodes_as_utc_datetime() -> None:
    moment = datetime(2030, 1, 1, 0, 0, 1, 500, tzinfo=timezone.utc)
    body = msgpack.packb(moment, datetime=True)
    assert_same(moment, unpack(body))


class _Color(str, enum.Enum):
    RED = "red"


class _Level(enum.IntEnum):
    HIGH = 3


class _Point(NamedTuple):
    x: int
    y: int


class _MyList(list):
    pass


class _MyFloat(float):
    pass


class _FakeDatetime(datetime):  # what freezegun hands out under freeze_time
    pass


def test_subclasses_travel_as_their_base_type() -> None:
    value = {
        "color": _Color.RED,
        "level": _Level.HIGH,
        "point": _Point(1, 2),
        "ordered": collections.OrderedDict(b=1, a=2),
        "default": collections.defaultdict(list, {"k": [1]}),
        "list": _MyList([1, 2]),
        "float": _MyFloat(1.5),
        "now": _FakeDatetime(2030, 1, 1, tzinfo=timezone.utc),
        "flag": True,
        "bytes": bytearray(b"ab"),
    }
    expected = {
        "color": "red",
        "level": 3,
        "point": (1, 2),
        "ordered": {"b": 1, "a": 2},
        "default": {"k": [1]},
        "list": [1, 2],
        "float": 1.5,
        "now": datetime(2030, 1, 1, tzinfo=timezone.utc),
        "flag": True,
        "bytes": b"ab",
    }
    assert_same(expected, unpack(pack(value)))


def test_concurrent_packing_from_threads_does_not_mix_buffers() -> None:
    items = [(i, {Decimal(i): (str(i), frozenset({i}))}, [i] * (i % 7)) for i in range(2000)]
    barrier = threading.Barrier(4)

    def work(chunk: list) -> list:
        barrier.wait()
        return [unpack(pack(item)) for item in chunk]

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(work, [items[k::4] for k in range(4)]))
    for k in range(4):
        assert_same(items[k::4], results[k])


# --------------------------------------------------------------------------- errors


class Foo:
    pass


def test_codec_error_is_a_value_error_and_a_framework_error() -> None:
    assert issubclass(CodecError, ValueError)
    assert issubclass(CodecError, ServiceFrameworkError)


@pytest.mark.parametrize(
    "value, message",
    [
        (Foo(), "cannot encode object of type Foo"),
        ({"nested": [1, {"deep": Foo()}]}, "cannot encode object of type Foo"),
        ({Foo(): 1}, "cannot encode object of type Foo"),
        ((1, Foo()), "cannot encode object of type Foo"),
        (object(), "cannot encode object of type object"),
        (lambda: None, "cannot encode object of type"),
        (2**64, "cannot encode int of 65 bits"),
        (-(2**63) - 1, "cannot encode int of 64 bits"),
        ([2**100], "msgpack integers are limited"),
        ("\ud800", "cannot encode"),
    ],
    ids=["object", "nested", "key", "in-tuple", "bare-object", "function", "int-high",
         "int-low", "int-in-list", "surrogate"],
)
def test_unencodable_values_raise_codec_error(value: Any, message: str) -> None:
    with pytest.raises(CodecError, match=message):
        pack(value)


def test_pack_rejects_oversized_message_after_packing() -> None:
    body = pack("x" * 100)
    with pytest.raises(
        CodecError, match=rf"^message of {len(body)} bytes exceeds max_message_bytes=50$"
    ):
        pack("x" * 100, max_bytes=50)
    assert pack("x" * 100, max_bytes=len(body)) == body


def test_unpack_rejects_oversized_message_before_decoding() -> None:
    with pytest.raises(CodecError, match=r"^message of 11 bytes exceeds max_message_bytes=10$"):
        unpack(b"\xc1" * 11, max_bytes=10)  # garbage, but the size is checked first


def test_default_limit_is_16_mib() -> None:
    assert DEFAULT_MAX_MESSAGE_BYTES == 16 * 1024 * 1024
    with pytest.raises(CodecError, match="exceeds max_message_bytes=16777216"):
        pack(b"\x00" * DEFAULT_MAX_MESSAGE_BYTES)


@pytest.mark.parametrize(
    "body, message",
    [
        (b"", "empty body"),
        (b"\xc1", "not valid msgpack"),
        (b"\x92\x01", "truncated"),
        (b"\xda\x00\x10abc", "truncated"),
        (b"\x01\x02", "1 bytes of trailing data"),
        (b"\xd4\x63\x00", "unknown ext type code 99"),
        (b"\xd4\x80\x00", "unknown ext type code -128"),
        (b"\xc7\x03\x02abc", "invalid datetime payload"),
        (b"\xc7\x03\x01\xff\xfe\xfd", "invalid Decimal payload"),
        (b"\xc7\x03\x01abc", "invalid Decimal payload"),
        (b"\xd6\x03\x07\xe4\x0d\x01", "invalid date payload"),
        (b"\xd4\x06\x00", "invalid UUID payload"),
        (b"\xd4\x09\x01", "invalid tuple payload"),
        (b"\xd5\x07\x91\x90", "invalid set payload"),
        (b"\xdd\xff\xff\xff\xff", "exceeds max_array_len"),
        (b"\x81\x90\x01", "unhashable"),
        (b"\x91" * 5000 + b"\x01", "nested too deeply"),
    ],
    ids=repr,
)
def test_bad_bodies_raise_codec_error(body: bytes, message: str) -> None:
    with pytest.raises(CodecError, match=message):
        unpack(body)


def test_timedelta_payload_out_of_range_is_rejected() -> None:
    body = msgpack.packb(msgpack.ExtType(5, struct.pack(">iII", 0, 86400, 0)))
    with pytest.raises(CodecError, match="invalid timedelta payload"):
        unpack(body)


def test_truncated_real_message_raises_codec_error() -> None:
    body = pack({"v": 1, "args": {Decimal("1.5"): (datetime(2030, 1, 1), {1, 2})}})
    for end in range(len(body)):
        with pytest.raises(CodecError):
            unpack(body[:end])


def test_tuple_nesting_is_limited_the_same_way_on_both_sides() -> None:
    ok: Any = 0
    for _ in range(MAX_EXT_DEPTH):
        ok = (ok,)
    assert unpack(pack(ok)) == ok
    too_deep = (ok,)
    with pytest.raises(CodecError, match="nested more than"):
        pack(too_deep)
    # The same nesting hand-built, as a hostile peer would send it.
    body = msgpack.packb(0)
    for _ in range(MAX_EXT_DEPTH + 1):
        body = msgpack.packb(msgpack.ExtType(9, b"\x91" + body))
    with pytest.raises(CodecError, match="nested more than"):
        unpack(body)


@settings(max_examples=300)
@given(st.binary(max_size=64))
def test_random_bytes_never_raise_anything_but_codec_error(body: bytes) -> None:
    try:
        unpack(body)
    except CodecError:
        pass


@settings(max_examples=300)
@given(values, st.data())
def test_corrupted_messages_never_raise_anything_but_codec_error(value: Any, data: Any) -> None:
    body = bytearray(pack(value))
    index = data.draw(st.integers(0, len(body) - 1))
    body[index] = data.draw(st.integers(0, 255))
    try:
        unpack(bytes(body))
    except CodecError:
        pass


def test_equal_sets_encode_to_the_same_bytes_whatever_the_hash_seed():
    import subprocess
    import sys

    program = ("from service_framework.wire import codec; "
               "print(codec.pack({'t': {'alpha', 'beta', 'gamma', ('x', 1)}, "
               "'f': frozenset(range(40)) | {'s%d' % i for i in range(20)}}).hex())")
    outputs = {subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                              env={"PYTHONHASHSEED": str(seed)}, check=True).stdout
               for seed in (1, 2, 3)}
    assert len(outputs) == 1
