"""`service_framework_testing.differential`: per-link recordings and their comparison.

The differential run itself (one topology on the memory bus and on ZeroMQ) is in
`tests/test_conformance.py`; here the recorder and the comparison are checked alone.
"""

from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from service_framework import Service
from service_framework.events import Event
from service_framework_testing.differential import (
    Link,
    LinkDivergence,
    LinkRecorder,
    assert_same_links,
    diff_links,
)

SERVICES = Path(__file__).parent / "services"
A, B = Link("relay", "ticks", "message"), Link("worker", "work", "request")


def event(dir, kind, name="work", **payload):
    return Event(1.0, dir, kind, name, "wf-1", payload)


def test_the_recorder_keeps_what_arrived_per_link_without_run_specific_fields():
    recorder = LinkRecorder()
    recorder.add_events("svc", [
        event("in", "request", args={"n": 1}),
        event("out", "reply", return_args={"n": 1}),  # sent, not received: no link
        event("in", "reply", return_args={"n": 2}),
        event("in", "state", name="book", args={"a": 1}, seq=3, is_snapshot=False),
        event("in", "error", error={"type": "RequestTimeout", "message": "tcp://…:4242",
                                    "raised": True}),
    ])
    assert recorder.links() == {
        Link("svc", "work", "request"): [{"n": 1}],
        Link("svc", "work", "reply"): [{"n": 2}],
        Link("svc", "book", "state"): [{"seq": 3, "is_snapshot": False, "args": {"a": 1}}],
        Link("svc", "work", "error"): [{"type": "RequestTimeout"}]}
    assert recorder.count("svc", "work", "request") == 1
    assert recorder.received("svc", "nothing", "message") == []


def test_a_mask_blanks_volatile_fields():
    recorder = LinkRecorder(mask=lambda link, args: {**args, "at": None})
    recorder.record("svc", event("in", "message", args={"n": 1, "at": datetime.now()}))
    assert recorder.received("svc", "work", "message") == [{"n": 1, "at": None}]


def test_equal_recordings_have_no_differences():
    links = {A: [{"n": 1}, {"n": 2}], B: [{"n": 1}]}
    assert diff_links(links, {B: [{"n": 1}], A: [{"n": 1}, {"n": 2}]}) == []
    assert_same_links(links, dict(links))


@pytest.mark.parametrize("other, expected", [
    ({A: [{"n": 1}, {"n": 3}]}, "relay.ticks (message): item 1 differs: memory {'n': 2}, "
                                "zmq {'n': 3}"),
    ({A: [{"n": 2}, {"n": 1}]}, "relay.ticks (message): item 0 differs"),  # order counts
    ({A: [{"n": 1}]}, "relay.ticks (message): memory has 2 item(s), zmq 1; memory goes on "
                      "with {'n': 2} where zmq ends"),
    ({A: [{"n": 1}, {"n": 2}], B: [{"n": 1}]}, "worker.work (request): only on zmq "
                                               "(1 item(s), first {'n': 1})"),
    ({A: [{"n": True}, {"n": 2}]}, "relay.ticks (message): item 0 differs"),  # 1 == True
])
def test_a_difference_names_its_link_and_first_index(other, expected):
    lines = diff_links({A: [{"n": 1}, {"n": 2}]}, other)
    assert len(lines) == 1 and lines[0].startswith(expected), lines


def test_values_must_be_written_the_same_not_only_compare_equal():
    utc = datetime(2030, 1, 1, tzinfo=timezone.utc)
    paris = utc.astimezone(timezone(timedelta(hours=1)))
    assert diff_links({A: [{"p": Decimal("1.50")}]}, {A: [{"p": Decimal("1.5")}]})
    assert diff_links({A: [{"at": utc}]}, {A: [{"at": paris}]})
    assert diff_links({A: [[1]]}, {A: [(1,)]})


def test_a_divergence_lists_every_link_that_differs():
    with pytest.raises(LinkDivergence) as error:
        assert_same_links({A: [1], B: [1]}, {A: [2], B: [2]}, labels=("seed 1", "seed 2"))
    message = str(error.value)
    assert message.startswith("seed 1 and seed 2 differ on 2 link(s):")
    assert "relay.ticks (message): item 0 differs: seed 1 1, seed 2 2" in message
    assert isinstance(error.value, AssertionError)


def test_a_trace_gives_the_links_the_live_recording_gave(sf_bus, tmp_path):
    address = {"replyer": "127.0.0.1:31001"}
    worker = Service(service_path=SERVICES / "conformance_worker.py", transport=sf_bus.bus,
                     addresses={"connections": {"in": {"work": address}}},
                     record_path=tmp_path / "worker.jsonl", console_loglevel="WARNING")
    live = LinkRecorder()
    worker.run_service()
    try:
        live.attach(worker)
        client = sf_bus.service(SERVICES / "conformance_client.py", main_mode=True,
                                config={"count": 3}, addresses={"connections": {"out": {
                                    "work": {"requester": ["127.0.0.1:31001"]}}}})
        client.run_main()
    finally:
        worker.stop_service()
    traced = LinkRecorder().add_trace(tmp_path / "worker.jsonl")
    assert traced.links() == live.links() == {
        Link("conformance_worker", "work", "request"): [{"n": n} for n in range(3)]}
