"""The trace file format (SPEC §12): header, one event per line, exact values, clear errors."""

from __future__ import annotations

import json
import math
import tempfile
import threading
import types
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from uuid import UUID

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from service_framework.events import Event
from service_framework.trace import (
    TraceFormatError,
    TraceReader,
    TraceRecorder,
    event_line,
    event_record,
    read_trace,
)
from service_framework.transport.memory import MemoryBus
from service_framework.wire import codec
from service_framework_testing.harness import ServiceHarness

ECHO = Path(__file__).resolve().parents[1] / "examples" / "echo"


# -- every codec value, exactly ------------------------------------------------------------
offsets = st.builds(lambda minutes, micro: timezone(timedelta(minutes=minutes,
                                                              microseconds=micro)),
                    st.integers(-23 * 60, 23 * 60), st.integers(0, 999_999))
aware_datetimes = st.builds(lambda dt, tz: dt.replace(tzinfo=tz), st.datetimes(), offsets)
hashables = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text()
    | st.decimals(allow_nan=False) | st.dates() | st.datetimes() | aware_datetimes
    | st.times() | st.timedeltas() | st.uuids() | st.binary(),
    lambda inner: st.tuples(inner) | st.tuples(inner, inner) | st.frozensets(inner, max_size=3),
    max_leaves=6)
leaves = (hashables | st.floats() | st.decimals() | st.times(timezones=offsets))
values = st.recursive(
    leaves,
    lambda inner: (st.lists(inner, max_size=4)
                   | st.dictionaries(st.text(max_size=4) | st.sampled_from(["$decimal", "$x"]),
                                     inner, max_size=4)
                   | st.dictionaries(hashables, inner, max_size=3)
                   | st.sets(hashables, max_size=3) | st.lists(inner, max_size=3).map(tuple)),
    max_leaves=12)


def identical(a, b) -> bool:
    """Equal and of the same types all the way down (NaN, -0.0 and Decimal digits too).

    `fold` is not compared: tagged JSON does not keep it (it plays no part in `==`).
    """
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a)
                                                     == math.copysign(1, b))
    if isinstance(a, Decimal):
        return str(a) == str(b)
    if isinstance(a, (datetime, time)):
        return (a.utcoffset() == b.utcoffset() and (a.tzinfo is None) == (b.tzinfo is None)
                and a.replace(tzinfo=None, fold=0) == b.replace(tzinfo=None, fold=0))
    if isinstance(a, dict):
        return len(a) == len(b) and all(identical(ka, kb) and identical(va, vb) for (ka, va), (
            kb, vb) in zip(a.items(), b.items(), strict=True))
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(identical(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, (set, frozenset)):
        # Paired by search, not by sorting on repr: a set's repr follows its insertion order
        # when hashes collide (frozenset({-8, False}) may print as frozenset({False, -8})).
        unmatched = list(b)
        for x in a:
            match = next((i for i, y in enumerate(unmatched) if identical(x, y)), None)
            if match is None:
                return False
            del unmatched[match]
        return not unmatched
    return a == b


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=values)
def test_every_codec_value_round_trips_through_a_trace_file_exactly(value):
    try:
        value = codec.unpack(codec.pack(value))  # what can cross the wire, as it arrives
    except codec.CodecError:
        assume(False)
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "trace.jsonl"
        with TraceRecorder(path, service="svc", started="2030-01-01T00:00:00+00:00") as rec:
            rec.record(Event(0.25, "in", "request", "conn", "wf-1", {"args": {"v": value}}))
            rec.record(Event(0.5, "out", "reply", "conn", "wf-1", {"return_args": value}))
        trace = read_trace(path)
    assert [event.payload.keys() for event in trace.events] == [{"args"}, {"return_args"}]
    assert identical(trace.events[0].payload["args"]["v"], value)
    assert identical(trace.events[1].payload["return_args"], value)


@settings(max_examples=100, deadline=None)
@given(value=values)
def test_the_fast_line_writer_matches_tagged_json(value):
    try:
        value = codec.unpack(codec.pack(value))
    except codec.CodecError:
        assume(False)
    event = Event(1.5, "out", "state", "book", "wf", {"args": value, "seq": 3,
                                                         "is_snapshot": False})
    assert json.loads(event_line(event, 1.5)) == json.loads(json.dumps(event_record(event)))


def test_a_trace_file_reads_back_tagged_values_as_written(tmp_path):
    path = tmp_path / "trace.jsonl"
    args = {"price": Decimal("1.50"), "at": datetime(2030, 1, 1, tzinfo=timezone.utc),
            "levels": {Decimal("100.1"): Decimal("2")}, "id": UUID(int=7),
            "pair": ("a", 1), "day": date(2030, 1, 2)}
    with TraceRecorder(path, service="svc", started="2030-01-01T00:00:00+00:00") as recorder:
        recorder.record(Event(0.001, "in", "message", "prices", "wf", {"args": args}))
    line = path.read_text().splitlines()[1]
    assert '"price":{"$decimal":"1.50"}' in line
    assert '"at":{"$datetime":"2030-01-01T00:00:00+00:00"}' in line
    assert read_trace(path).events[0].payload["args"] == args


# -- header ---------------------------------------------------------------------------------
def test_header_names_service_start_seed_and_transport(tmp_path):
    bus = MemoryBus(seed=11)
    harness = ServiceHarness(ECHO / "replyer.py", transport=bus,
                             config=ECHO / "replyer_config.json")
    try:
        recorder = TraceRecorder.attach(harness.runtime, tmp_path / "t.jsonl", seed=bus.seed)
        harness.request("echo", {"text": "hi"})
        recorder.close()
    finally:
        harness.close()
    header = json.loads((tmp_path / "t.jsonl").read_text().splitlines()[0])
    assert header["trace"] == 1 and header["service"] == "replyer" and header["seed"] == 11
    assert datetime.fromisoformat(header["started"]) == datetime(2030, 1, 1, tzinfo=timezone.utc)
    assert header["transport"] == "memory" and header["config"] == {"prefix": "echo: "}
    trace = read_trace(tmp_path / "t.jsonl")
    assert [(e.dir, e.kind, e.name) for e in trace.events] == [("in", "request", "echo"),
                                                               ("out", "reply", "echo")]
    assert trace.events[0].workflow_id == trace.events[1].workflow_id


def test_header_has_no_seed_key_without_a_seed(tmp_path):
    TraceRecorder(tmp_path / "t.jsonl", service="svc", started="2030-01-01T00:00:00").close()
    assert "seed" not in json.loads((tmp_path / "t.jsonl").read_text())


def test_secrets_never_reach_the_recorded_config(tmp_path):
    module = types.ModuleType("secretive")
    module.connection_models = {"in": {"ping": {
        "connection_type": "replyer",
        "required_creation_arguments": {"on_new_request": lambda a, t, s, c: {}}}}}
    harness = ServiceHarness(module, transport=MemoryBus(), config={
        "name": "x", "api_secret": "hunter2", "Client_SECRET_key": "k", "security": {"a": 1},
        "nested": {"db_secret": "s", "host": "h"}})
    try:
        TraceRecorder.attach(harness.runtime, tmp_path / "t.jsonl").close()
    finally:
        harness.close()
    text = (tmp_path / "t.jsonl").read_text()
    assert json.loads(text)["config"] == {
        "name": "x", "api_secret": "***", "Client_SECRET_key": "***",
        "nested": {"db_secret": "***", "host": "h"}}
    assert "hunter2" not in text and "security" not in text


# -- writing: whole lines, batches, threads -------------------------------------------------
def _event(number: int) -> Event:
    return Event(number / 1000, "in", "message", "ticks", f"wf-{number}", {"args": {"n": number}})


def test_events_are_written_in_whole_line_batches_and_close_flushes(tmp_path):
    path = tmp_path / "t.jsonl"
    recorder = TraceRecorder(path, service="svc", started="2030", flush_every=3,
                             flush_interval_s=3600)
    assert path.read_bytes().count(b"\n") == 1  # the header is there at once
    recorder.record(_event(1))
    recorder.record(_event(2))
    assert path.read_bytes().count(b"\n") == 1
    recorder.record(_event(3))
    assert path.read_bytes().count(b"\n") == 4 and path.read_bytes().endswith(b"\n")
    recorder.record(_event(4))
    recorder.close()
    recorder.record(_event(5))  # after close: ignored
    assert [e.payload["args"]["n"] for e in read_trace(path).events] == [1, 2, 3, 4]


def test_a_batch_is_written_when_the_flush_interval_passed(tmp_path):
    path = tmp_path / "t.jsonl"
    with TraceRecorder(path, service="svc", started="2030", flush_every=1000,
                       flush_interval_s=0.5) as recorder:
        recorder.record(Event(0.1, "in", "message", "m", "w", {"args": {}}))
        assert path.read_bytes().count(b"\n") == 1
        recorder.record(Event(0.6, "in", "message", "m", "w", {"args": {}}))
        assert path.read_bytes().count(b"\n") == 3


def test_later_changes_to_recorded_dicts_do_not_reach_the_trace(tmp_path):
    path = tmp_path / "t.jsonl"
    args = {"book": {"asks": {Decimal("1"): Decimal("2")}}, "tags": ["a"]}
    with TraceRecorder(path, service="svc", started="2030") as recorder:
        recorder.record(Event(0.0, "out", "state", "book", "w", {"args": args}))
        args["book"]["asks"][Decimal("3")] = Decimal("4")
        args["tags"].append("b")
    assert read_trace(path).events[0].payload["args"] == {
        "book": {"asks": {Decimal("1"): Decimal("2")}}, "tags": ["a"]}


def test_recording_from_several_threads_keeps_every_line_whole(tmp_path):
    path = tmp_path / "t.jsonl"
    recorder = TraceRecorder(path, service="svc", started="2030", flush_every=7)
    start = threading.Barrier(4)

    def record(offset: int) -> None:
        start.wait()
        for number in range(500):
            recorder.record(_event(offset + number))

    threads = [threading.Thread(target=record, args=(i * 1000,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    recorder.close()
    numbers = sorted(e.payload["args"]["n"] for e in read_trace(path).events)
    assert numbers == sorted(i * 1000 + n for i in range(4) for n in range(500))


def test_appending_cuts_a_torn_last_line_and_continues_the_clock(tmp_path):
    path = tmp_path / "t.jsonl"
    with TraceRecorder(path, service="svc", started="2030") as recorder:
        recorder.record(Event(2.5, "in", "message", "m", "w", {"args": {"n": 1}}))
    with open(path, "ab") as file:
        file.write(b'{"t":3.0,"dir":"in","ki')  # a crash in the middle of a write
    with TraceRecorder(path, service="svc", started="2031", start=10.0,
                       append=True) as recorder:
        recorder.record(Event(10.5, "in", "message", "m", "w", {"args": {"n": 2}}))
    trace = read_trace(path)
    assert trace.header["started"] == "2030"
    assert [(e.t, e.payload["args"]["n"]) for e in trace.events] == [(2.5, 1), (3.0, 2)]


def test_the_same_seed_and_inputs_give_the_same_trace_byte_for_byte(tmp_path):
    def record(path: Path) -> bytes:
        bus = MemoryBus(seed=7)
        harness = ServiceHarness(ECHO / "replyer.py", transport=bus,
                                 config=ECHO / "replyer_config.json")
        try:
            recorder = TraceRecorder.attach(harness.runtime, path, seed=7)
            for number in range(3):
                harness.request("echo", {"text": f"hi {number}", "amount": Decimal("1.5")})
                bus.advance(0.25)
            recorder.close()
        finally:
            harness.close()
        return path.read_bytes()

    assert record(tmp_path / "a.jsonl") == record(tmp_path / "b.jsonl")


# -- reading: errors name the line ----------------------------------------------------------
HEADER = '{"trace": 1, "service": "svc", "started": "2030-01-01T00:00:00+00:00"}\n'
GOOD = '{"t": 0.1, "dir": "in", "kind": "request", "name": "echo", "workflow_id": "w", ' \
       '"args": {"text": "hi"}}\n'


@pytest.mark.parametrize(("text", "line", "message"), [
    ("", 1, "empty trace"),
    ("{not json\n", 1, "not valid JSON"),
    ('{"service": "svc"}\n', 1, "header"),
    ('{"trace": 2, "service": "svc", "started": "x"}\n', 1, "unsupported trace version 2"),
    (HEADER + GOOD + "{oops\n", 3, "not valid JSON"),
    (HEADER + GOOD + GOOD.replace('"text": "hi"', '"text": {"$decimal": "abc"}'), 3,
     "bad tagged value"),
    (HEADER + GOOD + GOOD.replace('"kind": "request", ', ""), 3, "without 'kind'"),
    (HEADER + GOOD.replace('"dir": "in"', '"dir": "sideways"'), 2, "'dir' must be"),
    (HEADER + GOOD.replace('"t": 0.1', '"t": "soon"'), 2, "'t' must be a number"),
    (HEADER + GOOD + GOOD.rstrip("\n")[:40], 3, "cut off"),
    (HEADER + "[1, 2]\n", 2, "must be a JSON object"),
])
def test_bad_lines_are_named_by_line_number(tmp_path, text, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(text)
    with pytest.raises(TraceFormatError, match=message) as raised:
        read_trace(path)
    assert raised.value.line == line
    assert f"bad.jsonl:{line}:" in str(raised.value)


def test_blank_lines_are_skipped_and_events_keep_their_file_lines(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text(HEADER + "\n" + GOOD + GOOD)
    trace = read_trace(path)
    assert len(trace.events) == 2 and trace.lines == [3, 4]


def test_a_missing_trace_is_a_clear_error(tmp_path):
    with pytest.raises(TraceFormatError, match="not found"):
        read_trace(tmp_path / "nope.jsonl")


def test_the_reader_streams_events_with_their_line_numbers(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text(HEADER + GOOD + GOOD)
    with TraceReader(path) as reader:
        assert reader.header["service"] == "svc"
        assert [number for number, _ in reader] == [2, 3]
