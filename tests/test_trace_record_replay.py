"""Record over real ZeroMQ, replay on the memory bus (SPEC §12); record modes as in VCR.py."""

from __future__ import annotations

import importlib.util
import json
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
import zmq

from service_framework import RemoteError, RequestTimeout, Service
from service_framework.cli import replay
from service_framework.events import Event, error_record, recorded_error
from service_framework.trace import DEFAULT_FLUSH_EVERY, ReplayDivergence, ReplayError, read_trace
from service_framework.trace.cli import main as trace_main
from service_framework.transport.memory import MemoryBus
from service_framework.wire.envelope import decode_reply, encode_request
from service_framework_testing.ports import free_port

REPO = Path(__file__).resolve().parents[1]
ECHO = REPO / "examples" / "echo"
ORDER_BOOK = REPO / "examples" / "order_book"
MAX = 1 << 24
ECHO_CONFIG = {"prefix": "echo: "}
REQUESTS = [
    {"text": "hello 0"},
    {"text": "hello 1", "amount": Decimal("1.50")},
    {"text": "hello 2", "amount": Decimal("3.00"),
     "at": datetime(2030, 1, 1, 12, 30, tzinfo=timezone.utc)},
]


def wait_until(condition, timeout_s: float = 10.0, what: str = "a condition"):
    deadline = time.monotonic() + timeout_s
    while not (result := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(0.005)
    return result


class Client:
    """A DEALER speaking the framework's envelopes to a replyer over real ZeroMQ."""

    def __init__(self, port: int) -> None:
        self.context = zmq.Context.instance()
        self.socket = self.context.socket(zmq.DEALER)
        self.socket.linger = 0
        self.socket.connect(f"tcp://127.0.0.1:{port}")
        self.number = 0

    def request(self, args: dict, timeout_s: float = 5.0) -> dict:
        self.number += 1
        rid = f"test-{self.number}"
        self.socket.send(encode_request(f"wf-{self.number}", args, rid, max_bytes=MAX))
        deadline = time.monotonic() + timeout_s
        while (remaining := deadline - time.monotonic()) > 0:
            if self.socket.poll(int(remaining * 1000) + 1):
                reply = decode_reply(self.socket.recv_multipart()[-1], max_bytes=MAX)
                if reply.rid == rid:
                    if reply.error is not None:
                        raise RemoteError(reply.error["type"], reply.error["message"])
                    return reply.return_args
        raise AssertionError(f"no reply within {timeout_s}s")

    def close(self) -> None:
        self.socket.close()


def replyer_addresses(port: int) -> dict:
    return {"connections": {"in": {"echo": {"replyer": f"127.0.0.1:{port}"}}}}


@pytest.fixture
def echo_trace(tmp_path) -> Path:
    """The echo replyer recorded over real ZeroMQ: 3 requests, 6 events."""
    path = tmp_path / "echo.jsonl"
    port = free_port()
    with Service(service_path=ECHO / "replyer.py", config=ECHO / "replyer_config.json",
                 addresses=replyer_addresses(port), console_loglevel="WARNING",
                 record_path=path):
        client = Client(port)
        try:
            replies = [client.request(args) for args in REQUESTS]
        finally:
            client.close()
    assert [reply["count"] for reply in replies] == [1, 2, 3]
    return path


def edit_event(path: Path, index: int, change) -> None:
    """Rewrites event `index` (0-based after the header) with `change(record)`."""
    lines = path.read_text().splitlines()
    record = json.loads(lines[index + 1])
    change(record)
    lines[index + 1] = json.dumps(record)
    path.write_text("\n".join(lines) + "\n")


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "service_framework", *map(str, args)],
                          cwd=REPO, capture_output=True, text=True, timeout=60)


# -- ZeroMQ recording, memory-bus replay ----------------------------------------------------
def test_a_trace_recorded_over_zmq_replays_green_on_the_memory_bus(echo_trace, sf_trace):
    trace = read_trace(echo_trace)
    assert trace.header["transport"] == "zmq" and trace.header["config"]["prefix"] == "echo: "
    assert [(e.dir, e.kind) for e in trace.events] == [("in", "request"), ("out", "reply")] * 3
    assert trace.events[5].payload["return_args"]["at"] == REQUESTS[2]["at"]

    session = sf_trace.replay(ECHO / "replyer.py", echo_trace, mode="none", config_from_trace=True)
    assert session.mode == "replay" and session.harness.on_memory
    assert (session.report.fed, session.report.compared) == (3, 3)


def test_the_cli_replays_a_trace_and_exits_0(echo_trace):
    result = cli("--config-from-trace", "--replay", echo_trace, "-s", ECHO / "replyer.py", "-cl",
                 "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "replay OK" in result.stdout and "3 output(s) matched" in result.stdout
    # The example's own files work too (the addresses only name sockets on the bus).
    result = cli("--replay", echo_trace, "-s", ECHO / "replyer.py", "-cl", "WARNING",
                 "-a", ECHO / "addresses.json", "-c", ECHO / "replyer_config.json")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_cli_names_a_bad_trace_line_and_exits_2(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"trace": 1, "service": "replyer", "started": "x"}\n{oops\n')
    result = cli("--config-from-trace", "--replay", path, "-s", ECHO / "replyer.py")
    assert result.returncode == 2 and "bad.jsonl:2:" in result.stderr


def test_a_divergence_holds_events_as_the_trace_does(echo_trace, sf_trace):
    edit_event(echo_trace, 3, lambda r: r["return_args"].update(text="echo: HELLO 1"))
    with pytest.raises(ReplayDivergence) as raised:
        sf_trace.replay(ECHO / "replyer.py", echo_trace, mode="none", config_from_trace=True)
    recorded = read_trace(echo_trace).events[3]
    assert isinstance(raised.value.expected, Event) and raised.value.expected == recorded
    assert isinstance(raised.value.actual, Event) and raised.value.actual.kind == "reply"


def test_a_changed_reply_fails_the_replay_naming_its_event_index(echo_trace, sf_trace):
    edit_event(echo_trace, 3, lambda r: r["return_args"].update(text="echo: HELLO 1"))

    with pytest.raises(ReplayDivergence) as raised:
        sf_trace.replay(ECHO / "replyer.py", echo_trace, mode="none", config_from_trace=True)
    divergence = raised.value
    assert divergence.index == 3
    assert divergence.expected.payload["return_args"]["text"] == "echo: HELLO 1"
    assert divergence.actual.payload["return_args"]["text"] == "echo: hello 1"
    assert "event 3" in str(divergence) and '-    "text": "echo: HELLO 1"' in str(divergence)

    result = cli("--config-from-trace", "--replay", echo_trace, "-s", ECHO / "replyer.py", "-cl",
                 "WARNING")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "replay diverged at event 3" in result.stdout
    assert "expected:" in result.stdout and "HELLO 1" in result.stdout
    assert "actual:" in result.stdout and "echo: hello 1" in result.stdout


def test_a_mask_lets_a_volatile_field_differ(echo_trace, sf_trace):
    edit_event(echo_trace, 5, lambda r: r["return_args"].update(count=99))
    with pytest.raises(ReplayDivergence) as raised:
        sf_trace.replay(ECHO / "replyer.py", echo_trace, mode="none", config_from_trace=True)
    assert raised.value.index == 5

    session = sf_trace.replay(ECHO / "replyer.py", echo_trace, mode="none",
                              mask=["return_args.count"], config_from_trace=True)
    assert session.report.compared == 3
    assert cli("--config-from-trace", "--replay", echo_trace, "-s", ECHO / "replyer.py", "-cl",
               "WARNING",
               "--mask", "echo:return_args.count").returncode == 0


STAMP = textwrap.dedent('''
    """Answers with the time it was asked: a volatile field."""
    from datetime import datetime, timezone

    def stamp(args, to_send, states, config):
        return {"at": datetime.now(timezone.utc), "name": args["name"]}

    connection_models = {"in": {"stamp": {
        "connection_type": "replyer",
        "required_creation_arguments": {"on_new_request": stamp},
        "required_arguments": {"name": str},
        "required_return_arguments": {"at": datetime, "name": str}}}}
''')


@pytest.fixture
def stamp_trace(tmp_path) -> tuple[Path, Path]:
    """The stamp service recorded over real ZeroMQ in real time (before `sf_bus` freezes it)."""
    service = tmp_path / "stamp.py"
    service.write_text(STAMP)
    path, port = tmp_path / "stamp.jsonl", free_port()
    with Service(service_path=service, console_loglevel="WARNING", record_path=path,
                 addresses={"connections": {"in": {"stamp": {"replyer": f"127.0.0.1:{port}"}}}}):
        client = Client(port)
        try:
            client.request({"name": "a"})
        finally:
            client.close()
    return service, path


def test_a_timestamp_recorded_in_real_time_replays_at_the_recordings_time(stamp_trace,
                                                                        sf_trace):
    service, path = stamp_trace
    trace = read_trace(path)
    recorded = trace.events[1].payload["return_args"]["at"]
    # The replay's clock starts at the header's `started` and the request is fed at its
    # recorded t: the service reads almost the time it read then (not the bus's 2030).
    with pytest.raises(ReplayDivergence, match="event 1") as raised:
        sf_trace.replay(service, path, mode="none", config_from_trace=True)
    replayed = raised.value.actual.payload["return_args"]["at"]
    assert abs((replayed - recorded).total_seconds()) < 1.0
    assert replayed == datetime.fromisoformat(trace.header["started"]) + timedelta(
        seconds=trace.events[0].t)
    assert sf_trace.replay(service, path, mode="none",
                           mask="return_args.at", config_from_trace=True).report.compared == 1


@pytest.fixture
def requester_trace(tmp_path) -> Path:
    """The echo requester (main mode) recorded over real ZeroMQ against the echo replyer."""
    port, path = free_port(), tmp_path / "requester.jsonl"
    addresses = {"connections": {"in": {"echo": {"replyer": f"127.0.0.1:{port}"}},
                                 "out": {"echo": {"requester": f"127.0.0.1:{port}"}}}}
    with Service(service_path=ECHO / "replyer.py", config=ECHO / "replyer_config.json",
                 addresses=addresses, console_loglevel="WARNING"):
        requester = Service(service_path=ECHO / "requester.py", addresses=addresses,
                            config=ECHO / "requester_config.json", console_loglevel="WARNING",
                            record_path=path)
        requester.run_service_as_main()
        assert requester.wait_stopped(30) and requester.main_error is None
    return path


def test_a_main_mode_service_replays_with_its_requests_answered_from_the_trace(
        requester_trace, sf_trace, capsys):
    trace = read_trace(requester_trace)
    assert trace.header["main_mode"] is True
    assert [(e.dir, e.kind) for e in trace.events] == [("out", "request"), ("in", "reply")] * 3
    capsys.readouterr()
    session = sf_trace.replay(ECHO / "requester.py", requester_trace, mode="none",
                              config_from_trace=True)
    assert (session.report.compared, session.report.answered) == (3, 3)
    assert "reply 2: echo: hello 2 (count=3, amount=3.00)" in capsys.readouterr().out

    result = cli("--config-from-trace", "--replay", requester_trace, "-s", ECHO / "requester.py",
                 "-cl", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    edit_event(requester_trace, 2, lambda r: r["args"].update(text="bonjour 1"))
    result = cli("--config-from-trace", "--replay", requester_trace, "-s", ECHO / "requester.py",
                 "-cl", "WARNING")
    assert result.returncode == 1 and "replay diverged at event 2" in result.stdout


def test_recording_works_on_the_memory_transport_and_replays_without_pytest(tmp_path):
    bus, path = MemoryBus(seed=5), tmp_path / "memory.jsonl"
    addresses = {"connections": {"in": {"echo": {"replyer": "127.0.0.1:7001"}},
                                 "out": {"echo": {"requester": "127.0.0.1:7001"}}}}
    replyer = Service(service_path=ECHO / "replyer.py", config=ECHO / "replyer_config.json",
                      addresses=addresses, transport=bus, console_loglevel="WARNING",
                      record_path=path)
    replyer.run_service()
    try:
        Service(service_path=ECHO / "requester.py", config=ECHO / "requester_config.json",
                addresses=addresses, transport=bus,
                console_loglevel="WARNING").run_service_as_main_blocking()
    finally:
        replyer.stop_service()
    trace = read_trace(path)
    assert (trace.header["transport"], trace.header["seed"]) == ("memory", 5)
    assert len(trace.events) == 6
    report = replay(path, ECHO / "replyer.py", config_from_trace=True)
    assert (report.fed, report.compared) == (3, 3)


RELAY = textwrap.dedent('''
    """Relays expensive ticks as alerts: a subscriber whose handler publishes."""
    from decimal import Decimal

    def on_tick(args, to_send, states, config):
        if args["price"] > Decimal("100"):
            to_send("connection", "alerts", {"symbol": args["symbol"], "price": args["price"]})

    connection_models = {
        "in": {"ticks": {"connection_type": "subscriber",
                         "required_creation_arguments": {"on_new_message": on_tick},
                         "required_arguments": {"symbol": str, "price": Decimal}}},
        "out": {"alerts": {"connection_type": "publisher",
                           "required_arguments": {"symbol": str, "price": Decimal}}},
    }
''')


def test_messages_are_fed_to_subscribers_and_published_messages_compared(tmp_path, sf_bus,
                                                                          sf_trace):
    service, path = tmp_path / "relay.py", tmp_path / "relay.jsonl"
    service.write_text(RELAY)
    harness = sf_bus.service(service)
    sf_trace.record(harness, path)
    for price in ("99.5", "100.5", "101"):
        harness.publish("ticks", {"symbol": "ABC", "price": Decimal(price)})
    harness.close()
    assert [(e.dir, e.kind, e.name) for e in read_trace(path).events] == [
        ("in", "message", "ticks"), ("in", "message", "ticks"), ("out", "message", "alerts"),
        ("in", "message", "ticks"), ("out", "message", "alerts")]
    session = sf_trace.replay(service, path, mode="none", config_from_trace=True)
    assert (session.report.fed, session.report.compared) == (3, 2)

    edit_event(path, 4, lambda r: r["args"].update(price={"$decimal": "101.0"}))
    with pytest.raises(ReplayDivergence, match="event 4") as raised:
        sf_trace.replay(service, path, mode="none", config_from_trace=True)
    assert raised.value.actual_record["args"]["price"] == {"$decimal": "101"}  # the exact digits


def test_an_external_target_is_answered_from_the_recording(tmp_path, sf_bus, sf_trace):
    service, path = REPO / "examples" / "external_target" / "service.py", tmp_path / "fx.jsonl"
    harness = sf_bus.service(service, config={"fee": Decimal("0.0025")})
    sf_trace.record(harness, path)
    assert harness.request("convert", {"amount": Decimal("100"), "currency_from": "EUR",
                                       "currency_to": "USD"})["amount"] == Decimal("108.23")
    harness.close()
    assert sf_trace.replay(service, path, mode="none", config_from_trace=True).report.answered == 1

    # The replay uses the recorded rate, not the target: a changed rate changes the reply.
    edit_event(path, 2, lambda r: r["return_args"].update(rate={"$decimal": "2.0000"}))
    with pytest.raises(ReplayDivergence, match="event 3") as raised:
        sf_trace.replay(service, path, mode="none", config_from_trace=True)
    assert raised.value.actual_record["return_args"]["rate"] == {"$decimal": "2.0000"}


@pytest.fixture
def producer_trace(tmp_path) -> Path:
    """The order-book producer (main mode, an out-state) recorded over ZeroMQ in real time."""
    path = tmp_path / "producer.jsonl"
    addresses = {"states": {"out": {"book": {"publisher": f"127.0.0.1:{free_port()}",
                                             "replyer": f"127.0.0.1:{free_port()}"}}}}
    producer = Service(service_path=ORDER_BOOK / "producer.py", addresses=addresses,
                       config={"count": 5, "interval_s": 0.0, "hold_s": 0.0},
                       console_loglevel="WARNING", record_path=path)
    producer.run_service_as_main()
    assert producer.wait_stopped(30) and producer.main_error is None
    return path


def test_out_state_updates_are_compared_with_a_volatile_timestamp_masked(producer_trace,
                                                                         sf_trace):
    events = read_trace(producer_trace).events
    assert [(e.dir, e.kind, e.payload["seq"]) for e in events] == [
        ("out", "state", seq) for seq in range(1, 7)]
    with pytest.raises(ReplayDivergence) as raised:  # recorded now, replayed in 2030
        sf_trace.replay(ORDER_BOOK / "producer.py", producer_trace, mode="none",
                        config_from_trace=True)
    assert raised.value.index == 0 and "updated_time" in str(raised.value)
    session = sf_trace.replay(ORDER_BOOK / "producer.py", producer_trace, mode="none",
                              mask=["args.updated_time"], config_from_trace=True)
    assert session.report.compared == 6


def test_sf_trace_records_a_harness_on_zmq_too(tmp_path, sf_service, sf_trace):
    harness = sf_service(ECHO / "replyer.py", config=ECHO_CONFIG, transport="zmq")
    recorder = sf_trace.record(harness, tmp_path / "zmq.jsonl")
    harness.request("echo", {"text": "over zmq"})
    harness.close()
    assert recorder.closed  # closed with the harness
    trace = read_trace(tmp_path / "zmq.jsonl")
    assert trace.header["transport"] == "zmq" and trace.header["includes_start"] is False
    assert [e.payload.get("args", e.payload.get("return_args"))["text"]
            for e in trace.events] == ["over zmq", "echo: over zmq"]
    assert sf_trace.replay(ECHO / "replyer.py", tmp_path / "zmq.jsonl",
                           mode="none", config_from_trace=True).report.compared == 1


# -- record modes, as VCR.py defines them ----------------------------------------------------


def test_mode_once_records_a_missing_trace_then_replays_it(tmp_path, sf_trace):
    path = tmp_path / "echo.jsonl"
    first = sf_trace.replay(ECHO / "replyer.py", path, mode="once", config=ECHO_CONFIG)
    assert first.mode == "record"
    first.harness.request("echo", {"text": "a"})
    first.harness.request("echo", {"text": "b"})
    first.harness.close()
    assert len(read_trace(path).events) == 4

    second = sf_trace.replay(ECHO / "replyer.py", path, mode="once", config_from_trace=True)
    assert second.mode == "replay" and second.report.compared == 2
    recorded = path.read_bytes()
    # The same body works again (VCR.py's `once`): its requests are the recording's, and
    # answered as recorded; one the recording does not have is refused, naming it.
    assert second.harness.request("echo", {"text": "a"}) == {"text": "echo: a", "count": 1}
    assert second.harness.request("echo", {"text": "b"}) == {"text": "echo: b", "count": 2}
    with pytest.raises(ReplayDivergence, match="new interaction: a request to 'echo' with "
                       "args {'text': 'c'} is not in the recording"):
        second.harness.request("echo", {"text": "c"})
    second.harness.close()
    assert path.read_bytes() == recorded  # once: nothing more is written


def test_one_test_body_passes_in_the_recording_run_and_in_every_replay(tmp_path, sf_trace):
    path = tmp_path / "echo.jsonl"
    for run in range(3):  # the first run records; the others replay the same body
        session = sf_trace.replay(ECHO / "replyer.py", path, mode="once", config=ECHO_CONFIG)
        assert session.mode == ("record" if run == 0 else "replay")
        assert session.harness.request("echo", {"text": "x"}) == {"text": "echo: x",
                                                                  "count": 1}
        session.harness.close()


def test_mode_new_episodes_replays_then_appends_new_interactions(tmp_path, sf_trace):
    path = tmp_path / "echo.jsonl"
    first = sf_trace.replay(ECHO / "replyer.py", path, mode="new_episodes", config=ECHO_CONFIG)
    assert first.mode == "record"
    first.harness.request("echo", {"text": "a"})
    first.harness.close()

    second = sf_trace.replay(ECHO / "replyer.py", path, mode="new_episodes", config_from_trace=True)
    assert second.mode == "replay" and second.report.compared == 1
    assert second.harness.request("echo", {"text": "b"})["count"] == 2  # a new episode
    second.harness.close()
    trace = read_trace(path)
    assert [e.payload.get("args", e.payload.get("return_args"))["text"]
            for e in trace.events] == ["a", "echo: a", "b", "echo: b"]
    assert [e.t for e in trace.events] == sorted(e.t for e in trace.events)

    third = sf_trace.replay(ECHO / "replyer.py", path, mode="none", config_from_trace=True)
    assert third.report.compared == 2


def test_mode_none_refuses_a_missing_trace(tmp_path, sf_trace):
    with pytest.raises(ReplayError, match="'none'"):
        sf_trace.replay(ECHO / "replyer.py", tmp_path / "missing.jsonl", mode="none")
    assert not (tmp_path / "missing.jsonl").exists()


def test_mode_all_records_anew_over_an_existing_trace(echo_trace, sf_trace):
    edit_event(echo_trace, 1, lambda r: r["return_args"].update(text="never sent"))
    session = sf_trace.replay(ECHO / "replyer.py", echo_trace, mode="all", config=ECHO_CONFIG)
    assert session.mode == "record"  # no replay, so no divergence
    session.harness.request("echo", {"text": "fresh"})
    session.harness.close()
    trace = read_trace(echo_trace)
    assert trace.header["transport"] == "memory"
    assert [e.payload.get("args", e.payload.get("return_args"))["text"]
            for e in trace.events] == ["fresh", "echo: fresh"]


def test_unknown_record_mode_is_refused(tmp_path, sf_trace):
    with pytest.raises(ValueError, match="record mode must be one of"):
        sf_trace.replay(ECHO / "replyer.py", tmp_path / "t.jsonl", mode="sometimes")


GATEWAY = textwrap.dedent('''
    """Answers `ask` by asking `backend`: an outbound request the replay must answer."""

    def ask(args, to_send, states, config):
        reply = to_send("connection", "backend", {"q": args["q"]})
        return {"answer": reply["answer"] + 1}

    connection_models = {
        "in": {"ask": {"connection_type": "replyer",
                       "required_creation_arguments": {"on_new_request": ask},
                       "required_arguments": {"q": int},
                       "required_return_arguments": {"answer": int}}},
        "out": {"backend": {"connection_type": "requester",
                            "required_arguments": {"q": int},
                            "required_return_arguments": {"answer": int}}},
    }
''')


@pytest.fixture
def gateway(tmp_path, sf_bus, sf_trace) -> tuple[Path, Path]:
    """The gateway recorded on the memory bus, its backend stubbed: 1 request, 4 events."""
    service = tmp_path / "gateway.py"
    service.write_text(GATEWAY)
    path = tmp_path / "gateway.jsonl"
    harness = sf_bus.service(service)
    harness.stub("backend", side_effect=lambda args: {"answer": args["q"] * 10})
    sf_trace.record(harness, path)
    assert harness.request("ask", {"q": 4}) == {"answer": 41}
    harness.close()
    return service, path


def test_outbound_requests_are_answered_from_the_recording(gateway, sf_trace):
    service, path = gateway
    assert [(e.dir, e.kind, e.name) for e in read_trace(path).events] == [
        ("in", "request", "ask"), ("out", "request", "backend"), ("in", "reply", "backend"),
        ("out", "reply", "ask")]
    # no stub: the trace answers
    session = sf_trace.replay(service, path, mode="none", config_from_trace=True)
    assert (session.report.answered, session.report.compared) == (1, 2)


def test_a_recorded_error_reply_is_raised_again_in_the_replay(gateway, sf_trace):
    service, path = gateway
    edit_event(path, 2, lambda r: (r.update(kind="error", error={
        "type": "Overloaded", "message": "try later"}), r.pop("return_args")))
    edit_event(path, 3, lambda r: (r.update(kind="error", error={
        "type": "RemoteError", "message": "remote error from 'backend': Overloaded: try later"}),
        r.pop("return_args")))
    assert sf_trace.replay(service, path, mode="none", config_from_trace=True).report.compared == 2


def test_an_outbound_request_that_timed_out_times_out_again_in_the_replay(tmp_path, sf_bus,
                                                                          sf_trace):
    service, path = tmp_path / "gateway.py", tmp_path / "timeout.jsonl"
    service.write_text(GATEWAY)
    harness = sf_bus.service(service)  # nothing answers 'backend': it times out
    sf_trace.record(harness, path)
    with pytest.raises(RemoteError) as timed_out:
        harness.request("ask", {"q": 4})
    harness.close()
    assert timed_out.value.remote_type == "RequestTimeout"
    events = read_trace(path).events
    assert [(e.dir, e.kind, e.name) for e in events] == [
        ("in", "request", "ask"), ("out", "request", "backend"), ("in", "error", "backend"),
        ("out", "error", "ask")]
    assert events[2].payload["error"] == {"type": "RequestTimeout", "raised": True,
                                          "message": timed_out.value.remote_message}
    # the same message, word for word
    session = sf_trace.replay(service, path, mode="none", config_from_trace=True)
    assert (session.report.answered, session.report.compared) == (1, 2)


def test_a_refused_request_is_recorded_as_received_and_its_error_reply_replayed(
        tmp_path, sf_bus, sf_trace):
    path = tmp_path / "refused.jsonl"
    harness = sf_bus.service(ECHO / "replyer.py", config=ECHO_CONFIG)
    sf_trace.record(harness, path)
    for args in ({"text": 5}, ["not", "a", "map"]):
        with pytest.raises(RemoteError) as refused:
            harness.request("echo", args)
        assert refused.value.remote_type == "ArgumentError"
    assert harness.request("echo", {"text": "fine"})["count"] == 1
    harness.close()
    events = read_trace(path).events
    assert [(e.dir, e.kind) for e in events] == [("in", "request"), ("out", "error")] * 2 + [
        ("in", "request"), ("out", "reply")]
    assert [events[0].payload, events[2].payload] == [{"args": {"text": 5}},  # as received
                                                      {"args": ["not", "a", "map"]}]
    session = sf_trace.replay(ECHO / "replyer.py", path, mode="none", config_from_trace=True)
    assert (session.report.fed, session.report.compared, session.report.notes) == (3, 3, [])

    edit_event(path, 1, lambda r: r["error"].update(message="a different complaint"))
    with pytest.raises(ReplayDivergence, match=r"event 1 .*: the error differs") as raised:
        sf_trace.replay(ECHO / "replyer.py", path, mode="none", config_from_trace=True)
    assert raised.value.actual.payload["error"]["type"] == "ArgumentError"


FEED = textwrap.dedent('''
    """Asks an external target that fails in three ways: how does each come back?"""
    from service_framework import RemoteError, RequestTimeout

    def feed(what):
        if what == "late":
            raise RequestTimeout("feed: no answer within 2s")
        if what == "down":
            raise RemoteError("Unavailable", "market closed", "upstream")
        raise ValueError(f"no such feed: {what}")

    def fetch(args, to_send, states, config):
        try:
            return to_send("connection", "feed", {"what": args["what"]})
        except RemoteError as error:
            return {"status": f"{error.remote_type}: {error.remote_message} ({error.connection})"}

    connection_models = {
        "in": {"fetch": {"connection_type": "replyer",
                         "required_creation_arguments": {"on_new_request": fetch},
                         "required_arguments": {"what": str},
                         "required_return_arguments": {"status": str}}},
        "out": {"feed": {"connection_type": "external_target",
                         "required_creation_arguments": {"target": feed},
                         "required_arguments": {"what": str},
                         "required_return_arguments": {"status": str}}},
    }
''')


def test_an_external_target_that_raised_raises_again_in_the_replay(tmp_path, sf_bus, sf_trace):
    service, path = tmp_path / "feed.py", tmp_path / "feed.jsonl"
    service.write_text(FEED)
    harness = sf_bus.service(service)
    sf_trace.record(harness, path)
    with pytest.raises(RemoteError, match="RequestTimeout: feed: no answer within 2s"):
        harness.request("fetch", {"what": "late"})  # the timeout reaches the replyer
    assert harness.request("fetch", {"what": "down"}) == {
        "status": "Unavailable: market closed (upstream)"}
    with pytest.raises(RemoteError, match="ValueError: no such feed: odd"):
        harness.request("fetch", {"what": "odd"})
    harness.close()
    events = read_trace(path).events
    assert [(e.dir, e.kind, e.name) for e in events[:4]] == [
        ("in", "request", "fetch"), ("out", "request", "feed"), ("in", "error", "feed"),
        ("out", "error", "fetch")]
    assert events[10].payload["error"] == {"type": "ValueError", "raised": True,
                                           "message": "no such feed: odd"}

    # RequestTimeout and RemoteError come back as they were; any other type as a
    # RemoteError that carries it (errors.py says why), which this handler catches.
    with pytest.raises(ReplayDivergence, match="event 11") as raised:
        sf_trace.replay(service, path, mode="none", config_from_trace=True)
    assert raised.value.expected.payload["error"]["type"] == "ValueError"
    assert raised.value.actual_record == {
        "dir": "out", "kind": "reply", "name": "fetch",
        "return_args": {"status": "ValueError: no such feed: odd (feed)"}}
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:9]) + "\n")  # the first two exchanges only
    assert sf_trace.replay(service, path, mode="none", config_from_trace=True).report.compared == 4


def test_a_recorded_error_is_raised_again_as_the_service_saw_it():
    timeout = recorded_error(error_record(RequestTimeout("no reply")), "backend")
    assert type(timeout) is RequestTimeout and str(timeout) == "no reply"
    remote = recorded_error(error_record(RemoteError("Busy", "later", "upstream")), "backend")
    assert (type(remote), remote.remote_type, remote.remote_message, remote.connection) == (
        RemoteError, "Busy", "later", "upstream")
    other = recorded_error(error_record(KeyError("EUR")), "rates")
    assert (type(other), other.remote_type, other.remote_message, other.connection) == (
        RemoteError, "KeyError", "'EUR'", "rates")
    # An error *reply* is always the RemoteError the requester raised, whatever its type.
    reply = recorded_error({"type": "RequestTimeout", "message": "downstream"}, "backend")
    assert (type(reply), reply.remote_type, reply.remote_message) == (
        RemoteError, "RequestTimeout", "downstream")


def test_a_new_interaction_after_a_replay_is_an_error_in_mode_none(gateway, sf_trace):
    service, path = gateway
    session = sf_trace.replay(service, path, mode="none", config_from_trace=True)
    with pytest.raises(ReplayDivergence, match="new interaction: a request to 'ask'"):
        session.harness.request("ask", {"q": 5})  # never asked in the recording


def test_a_new_interaction_during_a_replay_is_a_divergence(gateway, sf_trace):
    service, path = gateway
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], lines[1], lines[4]]) + "\n")  # no backend exchange
    with pytest.raises(ReplayDivergence) as raised:
        sf_trace.replay(service, path, mode="none", config_from_trace=True)
    assert raised.value.index == 1
    assert raised.value.actual.kind == "request" and raised.value.actual.name == "backend"
    sf_trace.check()  # reported by the replay itself, not again at the end


def test_new_episodes_go_live_and_are_appended_with_their_outbound_requests(gateway, sf_bus,
                                                                            sf_trace):
    service, path = gateway
    harness = sf_bus.service(service)
    harness.stub("backend", returns={"answer": 70})
    session = sf_trace.replay(harness, path, mode="new_episodes", config_from_trace=True)
    assert session.report.answered == 1  # the recorded answer, not the stub's
    assert harness.request("ask", {"q": 7}) == {"answer": 71}  # the stub again: live
    harness.close()
    events = read_trace(path).events
    assert [(e.dir, e.kind, e.name) for e in events[4:]] == [
        ("in", "request", "ask"), ("out", "request", "backend"), ("in", "reply", "backend"),
        ("out", "reply", "ask")]


def test_extra_output_is_reported_at_the_end(echo_trace, sf_trace):
    lines = echo_trace.read_text().splitlines()
    echo_trace.write_text("\n".join(lines[:-1]) + "\n")  # the last reply is not recorded
    with pytest.raises(ReplayDivergence) as raised:
        sf_trace.replay(ECHO / "replyer.py", echo_trace, mode="none", config_from_trace=True)
    assert raised.value.index == 5 and raised.value.expected is None
    assert "after the last event" in str(raised.value)


# -- SIGTERM while recording under load ------------------------------------------------------
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_a_signal_under_load_leaves_a_valid_trace(tmp_path, signum):
    port, path = free_port(), tmp_path / "load.jsonl"
    addresses = tmp_path / "addresses.json"
    addresses.write_text(json.dumps(replyer_addresses(port)))
    process = subprocess.Popen(
        [sys.executable, "-m", "service_framework", "-s", ECHO / "replyer.py", "-a", addresses,
         "-c", ECHO / "replyer_config.json", "-cl", "WARNING", "--record", path],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    received: list[dict] = []
    stop = threading.Event()

    def load() -> None:
        client = Client(port)
        try:
            while not stop.is_set():
                try:
                    received.append(client.request({"text": f"n{len(received)}"}, 1.0))
                except (AssertionError, RemoteError):
                    pass  # no answer while stopping, or a ServiceStopping refusal
        finally:
            client.close()

    loader = threading.Thread(target=load)
    loader.start()
    try:
        wait_until(lambda: len(received) >= 300 or process.poll() is not None, 30,
                   "300 replies from the recording service")
        assert process.poll() is None, process.communicate()
        process.send_signal(signum)
        out, err = process.communicate(timeout=15)
    finally:
        stop.set()
        loader.join(10)
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert path.read_bytes().endswith(b"\n")  # never half a line
    trace = read_trace(path)  # every line parses
    replies = [e for e in trace.events if (e.dir, e.kind) == ("out", "reply")]
    requests = [e for e in trace.events if (e.dir, e.kind) == ("in", "request")]
    if signum == signal.SIGTERM:  # a clean stop: nothing is lost
        assert process.returncode == 0, err
        assert len(replies) == len(requests) >= len(received) >= 300
        assert {r["count"] for r in received} <= {e.payload["return_args"]["count"]
                                                   for e in replies}
    else:  # killed: at most the last batch (256 events, 128 requests) is lost
        assert process.returncode == -signal.SIGKILL
        assert len(replies) >= len(received) - DEFAULT_FLUSH_EVERY // 2


# -- the timeline ------------------------------------------------------------------------------
def test_show_prints_the_timeline_one_line_per_event(echo_trace, capsys):
    assert trace_main(["show", str(echo_trace)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("trace of service 'replyer', started ")
    assert "on zmq" in lines[0]
    events = lines[2:-1]
    assert len(events) == 6 and lines[-1] == "6 event(s)"
    index, t, direction, kind, name = events[1].split()[:5]
    assert (index, direction, kind, name) == ("1", "out", "reply", "echo")
    assert float(t) >= 0
    assert "text='echo: hello 1', count=2, amount=1.50" in events[3]
    assert "at=2030-01-01T12:30:00+00:00" in events[4]


@pytest.mark.parametrize("console_script", [False, True], ids=["python-m", "console-script"])
def test_show_runs_as_a_command_and_stops_at_a_limit(echo_trace, console_script):
    command = [sys.executable, "-m", "service_framework.trace.cli"]
    if console_script:
        script = Path(sys.executable).parent / "service_framework-trace"
        if not script.exists():
            pytest.skip("service_framework-trace is not installed (pip install -e .)")
        command = [str(script)]
    result = subprocess.run([*command, "show", str(echo_trace), "--limit", "2"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "stopped after 2 events" in result.stdout
    assert len([line for line in result.stdout.splitlines() if " echo " in line]) == 2


def test_show_names_the_bad_line(tmp_path, capsys):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"trace": 1, "service": "s", "started": "x"}\n{oops\n')
    assert trace_main(["show", str(path)]) == 2
    assert "bad.jsonl:2:" in capsys.readouterr().err


# -- the order book: in-states recorded over ZeroMQ, replayed on the memory bus ----------------
def order_book_addresses(tmp_path: Path) -> Path:
    """The example's addresses, each port replaced by a free one (a port shared stays shared)."""
    text = (ORDER_BOOK / "addresses.json").read_text()
    for old in sorted(set(re.findall(r':(\d+)"', text))):
        text = text.replace(f':{old}"', f':{free_port()}"')
    path = tmp_path / "addresses.json"
    path.write_text(text)
    return path


def load_module(path: Path):
    spec = importlib.util.spec_from_file_location(f"_trace_test_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def order_book_trace(tmp_path) -> tuple[Path, list[dict]]:
    """The order-book consumer recorded over real ZeroMQ: a snapshot, then numbered deltas,
    with requests for the book in between (the producer driven step by step by the test)."""
    addresses, path = order_book_addresses(tmp_path), tmp_path / "consumer.jsonl"
    book_port = json.loads(addresses.read_text())["connections"]["in"]["book"]["replyer"]
    updates = list(load_module(ORDER_BOOK / "producer.py").book_updates(30, seed=3))
    consumer = Service(service_path=ORDER_BOOK / "consumer.py", addresses=addresses,
                       config=ORDER_BOOK / "consumer_config.json", console_loglevel="WARNING",
                       record_path=path)
    producer = Service(service_path=ORDER_BOOK / "producer.py", addresses=addresses,
                       config={"heartbeat_s": 0.05}, console_loglevel="WARNING")
    books = []
    consumer.run_service()
    producer.run_service()  # not main mode: the test sends the updates itself
    client = Client(int(book_port.rpartition(":")[2]))
    try:
        in_state = consumer.runtime.in_states["book"]
        producer.runtime.to_send("state", "book", updates[0])
        # In sync, and subscribed (a heartbeat came through): no delta can be missed.
        wait_until(lambda: in_state.synced and in_state.seq == 1 and in_state.heartbeats, 20,
                   "the consumer to sync with the producer")
        for number, update in enumerate(updates[1:], start=2):
            producer.runtime.to_send("state", "book", update)
            if number % 10 == 0:
                wait_until(lambda n=number: in_state.seq == n, 10, f"update {number}")
                books.append(client.request({}))
        wait_until(lambda: in_state.seq == len(updates), 10, "the last update")
        books.append(client.request({}))
    finally:
        client.close()
        consumer.stop_service()
        producer.stop_service()
    assert len(books) == 4 and books[0] != books[-1]
    states = [e for e in read_trace(path).events if e.kind == "state"]
    assert [e.payload["seq"] for e in states][-30:] == list(range(2, 32))
    return path, books


def test_the_order_book_consumer_recorded_over_zmq_replays_on_memory(order_book_trace,
                                                                      sf_trace):
    path, books = order_book_trace
    session = sf_trace.replay(ORDER_BOOK / "consumer.py", path, mode="none", config_from_trace=True)
    assert session.report.compared == len(books)
    assert session.report.fed >= 31 + len(books)  # every state update and every request
    assert session.harness.states["book"] == books[-1]
    assert session.harness.is_synced("book")


def test_a_changed_state_update_shows_in_the_replayed_replies(order_book_trace, sf_trace):
    path, _ = order_book_trace
    events = read_trace(path).events
    first_reply = next(i for i, e in enumerate(events) if e.kind == "reply")
    last_update = max(i for i, e in enumerate(events[:first_reply]) if e.kind == "state")
    assert not events[last_update].payload["is_snapshot"]  # a delta
    edit_event(path, last_update, lambda r: r["args"].update(
        updated_time={"$datetime": "2001-01-01T00:00:00+00:00"}))
    with pytest.raises(ReplayDivergence) as raised:
        sf_trace.replay(ORDER_BOOK / "consumer.py", path, mode="none", config_from_trace=True)
    assert raised.value.index == first_reply
