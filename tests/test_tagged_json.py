"""Tagged JSON for traces: every value the codec carries survives dumps/loads exactly."""

from __future__ import annotations

import enum
import json
from collections import OrderedDict
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import freezegun
import pytest
from hypothesis import given, settings
from test_codec import LONG_REPR, assert_same, hashables, values

from service_framework.trace.tagged_json import dumps, from_jsonable, loads, to_jsonable
from service_framework.wire.codec import pack, unpack

pytestmark = LONG_REPR


@settings(max_examples=400)
@given(values)
def test_every_carried_value_round_trips_exactly(value: Any) -> None:
    line = dumps(value)
    assert "\n" not in line and "\r" not in line and line.isascii()
    # fold is not part of ISO 8601 (and never changes == for naive or fixed-offset values)
    assert_same(value, loads(line), check_fold=False)


@given(values)
def test_to_jsonable_gives_plain_json_and_from_jsonable_inverts_it(value: Any) -> None:
    plain = to_jsonable(value)
    assert json.loads(json.dumps(plain, allow_nan=False)) == plain
    assert_same(value, from_jsonable(plain), check_fold=False)


@given(values)
def test_codec_and_trace_agree(value: Any) -> None:
    """A value read off the wire and written to a trace reads back as the same value."""
    assert_same(value, loads(dumps(unpack(pack(value)))), check_fold=False)


@given(hashables)
def test_sets_are_written_in_a_stable_order(value: Any) -> None:
    items = {value, "a", 1, (2, "b")}
    assert dumps(set(items)) == dumps(set(reversed(list(items))))


@pytest.mark.parametrize(
    "value, expected",
    [
        (Decimal("1.50"), {"$decimal": "1.50"}),
        (Decimal("-NaN"), {"$decimal": "-NaN"}),
        (datetime(2030, 1, 1, tzinfo=timezone.utc), {"$datetime": "2030-01-01T00:00:00+00:00"}),
        (datetime(2030, 1, 1, 12, 0, 0, 5), {"$datetime": "2030-01-01T12:00:00.000005"}),
        (date(2030, 1, 2), {"$date": "2030-01-02"}),
        (time(12, 0, tzinfo=timezone(timedelta(hours=1))), {"$time": "12:00:00+01:00"}),
        (timedelta(days=-1, seconds=5, microseconds=7), {"$timedelta": [-1, 5, 7]}),
        (UUID(int=1), {"$uuid": "00000000-0000-0000-0000-000000000001"}),
        ({1, "a"} - {1, "a"}, {"$set": []}),
        (frozenset({"b", "a"}), {"$frozenset": ["a", "b"]}),
        ((1, [2]), {"$tuple": [1, [2]]}),
        (b"\x00\xff", {"$bytes": "AP8="}),
        (float("nan"), {"$float": "nan"}),
        (float("-inf"), {"$float": "-inf"}),
        ({Decimal("1"): 2}, {"$map": [[{"$decimal": "1"}, 2]]}),
        ({"a": 1, 2: 3}, {"$map": [["a", 1], [2, 3]]}),
        ({"$decimal": "1"}, {"$dict": {"$decimal": "1"}}),
        ({"$a": 1, "$b": 2}, {"$a": 1, "$b": 2}),
        ({"plain": [1, 2.5, None, True]}, {"plain": [1, 2.5, None, True]}),
    ],
    ids=repr,
)
def test_tag_formats(value: Any, expected: Any) -> None:
    assert to_jsonable(value) == expected
    assert_same(value, loads(dumps(value)))


def test_dumps_is_compact_and_escapes_line_separators() -> None:
    assert dumps({"a": [1, 2]}) == '{"a":[1,2]}'
    assert dumps("x\u2028y\n") == '"x\\u2028y\\n"'


def test_nested_dollar_keys_survive() -> None:
    value = {"$dict": {"$map": {"$tuple": [1]}}, "k": {"$set": 1}}
    assert to_jsonable(value)["k"] == {"$dict": {"$set": 1}}
    assert_same(value, loads(dumps(value)))


class _Side(str, enum.Enum):
    BUY = "buy"


class _Level(enum.IntEnum):
    TOP = 1


def test_subclasses_become_their_base_type_like_in_the_codec() -> None:
    value = [_Side.BUY, _Level.TOP, OrderedDict(a=1), bytearray(b"x")]
    assert_same(["buy", 1, {"a": 1}, b"x"], loads(dumps(value)))


def test_zoneinfo_datetime_keeps_its_instant_and_offset() -> None:
    moment = datetime(2030, 1, 1, 12, tzinfo=ZoneInfo("Europe/Paris"))
    result = loads(dumps(moment))
    assert result == moment and result.utcoffset() == timedelta(hours=1)


@pytest.mark.parametrize("offset", [timedelta(microseconds=1), -timedelta(microseconds=1),
                                    timedelta(hours=-23, minutes=-59, seconds=-1, microseconds=-7)])
def test_offsets_below_a_second_survive(offset: timedelta) -> None:
    # CPython 3.11's fromisoformat reads "+00:00:00.000001" as UTC; the decoder does not.
    tz = timezone(offset)
    for value in (datetime(2000, 1, 1, tzinfo=tz), time(0, 0, tzinfo=tz)):
        assert loads(dumps(value)).utcoffset() == offset


def test_hand_written_z_suffix_means_utc() -> None:
    assert_same(datetime(2030, 1, 1, tzinfo=timezone.utc),
                loads('{"$datetime": "2030-01-01T00:00:00Z"}'))
    assert_same(time(12, tzinfo=timezone.utc), loads('{"$time": "12:00Z"}'))


def test_unsupported_type_raises_type_error_naming_it() -> None:
    class Widget:
        pass

    with pytest.raises(TypeError, match="cannot convert object of type .*Widget"):
        dumps({"w": Widget()})


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"$nope": 1}', "unknown tagged JSON tag '\\$nope'"),
        ('{"$decimal": 1}', "expects a str"),
        ('{"$float": "1.5"}', "expects 'nan', 'inf' or '-inf'"),
        ('{"$timedelta": [1, 2]}', "days, seconds, microseconds"),
        ('{"$map": [[1]]}', "key, value"),
        ('{"$tuple": {}}', "expects a list"),
        ('{"$dict": []}', "expects a dict"),
        ('{"$datetime": "yesterday"}', "Invalid isoformat"),
        ('{"$datetime": "2030-01-01T00:00:00+xx:00"}', "Invalid isoformat"),
        ('{"$time": "12:00+25:00"}', "offset must be a timedelta strictly between"),
        ('{"$decimal": "one"}', "invalid tagged JSON '\\$decimal' value"),
        ('{"$set": [[1]]}', "unhashable"),
        ('{"$bytes": "***"}', "base64|Non-base64|Invalid"),
    ],
)
def test_malformed_tags_raise_value_error(line: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        loads(line)


def test_freezegun_fake_datetimes_are_written_and_read_back_as_the_real_types() -> None:
    """While time is frozen (as `sf_bus` freezes it), `datetime` and `date` are fakes.

    freezegun swaps every module attribute that is the real class, so `tagged_json` must
    not build its values through those names.
    """
    with freezegun.freeze_time("2030-01-02T03:04:05+00:00"):
        now, today = datetime.now(timezone.utc), date.today()
        assert type(now).__name__ == "FakeDatetime" and type(today).__name__ == "FakeDate"
        plain = to_jsonable({"now": now, "today": today, "pair": (now, today)})
        back = from_jsonable(plain)
    assert plain == {"now": {"$datetime": "2030-01-02T03:04:05+00:00"},
                     "today": {"$date": "2030-01-02"},
                     "pair": {"$tuple": [{"$datetime": "2030-01-02T03:04:05+00:00"},
                                         {"$date": "2030-01-02"}]}}
    assert_same({"now": datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
                 "today": date(2030, 1, 2),
                 "pair": (datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone.utc), date(2030, 1, 2))},
                back)
