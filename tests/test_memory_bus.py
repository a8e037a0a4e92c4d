"""The memory bus: ZMQ semantics, virtual time, faults and determinism."""

from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from service_framework import RemoteError, RequestTimeout
from service_framework.transport.base import SocketKind
from service_framework.transport.clocks import VirtualClock
from service_framework.transport.memory import MemoryBus

SERVICES = Path(__file__).parent / "services"
EXAMPLES = Path(__file__).parents[1] / "examples"
ECHO_ADDRESSES = EXAMPLES / "echo" / "addresses.json"
START = datetime(2030, 1, 1, tzinfo=timezone.utc)


def echo_pair(bus, *, count=5, replyer_config=None):
    replyer = bus.service(EXAMPLES / "echo" / "replyer.py", addresses=ECHO_ADDRESSES,
                          config=replyer_config or {"prefix": "> "})
    requester = bus.service(EXAMPLES / "echo" / "requester.py", addresses=ECHO_ADDRESSES,
                            config={"count": count}, main_mode=True)
    return replyer, requester


def test_two_services_talk_through_their_addresses(sf_bus):
    _, requester = echo_pair(sf_bus, count=3)
    requester.run_main()
    assert [entry.reply["text"] for entry in requester.sent] == [
        "> hello 0", "> hello 1", "> hello 2"]


def test_a_request_with_no_replyer_times_out_in_virtual_time(sf_service, sf_bus):
    shop = sf_service(SERVICES / "shop.py")  # its 'prices' requester has no replyer
    before = sf_bus.clock.monotonic()
    with pytest.raises(RemoteError) as error:
        shop.request("quote", {"symbol": "ABC", "qty": 1})
    assert error.value.remote_type == "RequestTimeout"
    assert sf_bus.clock.monotonic() - before == pytest.approx(1.0)  # the model's timeout_s


def test_a_dropped_request_is_retried_by_lazy_pirate(sf_bus):
    sf_bus.faults.drop(connection="echo", nth=0)  # the first packet on 'echo' is lost
    _, requester = echo_pair(sf_bus, count=2)
    requester.run_main()
    assert len(requester.sent) == 2
    assert sf_bus.clock.monotonic() == pytest.approx(2.0)  # one timeout_s of the requester


def test_a_partition_makes_requests_time_out_and_healing_restores_them(sf_bus):
    _, requester = echo_pair(sf_bus, count=1)
    sf_bus.faults.partition("requester", "replyer")
    with pytest.raises(RequestTimeout):
        requester.run_main()
    sf_bus.faults.heal()
    requester.run_main()
    assert requester.sent[-1].reply["text"] == "> hello 0"


def test_a_one_way_partition_loses_only_replies(sf_bus):
    replyer, requester = echo_pair(sf_bus, count=1)
    sf_bus.faults.partition("replyer", "requester", one_way=True)
    with pytest.raises(RequestTimeout):
        requester.run_main()
    assert replyer.runtime.counters.get("error_replies", 0) == 0
    assert sum(1 for line in sf_bus.deliveries if "requester.echo->replyer.echo" in line) == 3


def test_duplicated_requests_are_answered_twice_and_the_late_reply_dropped(sf_bus):
    sf_bus.faults.duplicate(link=("requester", "replyer"), nth=0)
    _, requester = echo_pair(sf_bus, count=2)
    requester.run_main()
    assert [entry.reply["count"] for entry in requester.sent] == [1, 3]
    assert requester.runtime.counters["late_replies_dropped"] == 1


def test_a_publisher_with_no_subscriber_drops(sf_bus):
    bus = sf_bus.bus
    publisher = bus.socket(SocketKind.XPUB, owner="a.pub")
    publisher.bind("tcp://127.0.0.1:7000")
    assert publisher.send([b"topic", b"body"])
    subscriber = bus.socket(SocketKind.SUB, owner="b.sub")
    subscriber.connect("tcp://127.0.0.1:7000")
    subscriber.subscribe(b"topic")
    assert subscriber.recv() is None  # the message sent before it subscribed is gone
    publisher.send([b"topic", b"second"])
    publisher.send([b"other", b"not for it"])
    assert subscriber.recv() == [b"topic", b"second"]
    assert subscriber.recv() is None
    publisher.close()
    subscriber.close()


def test_the_high_water_mark_drops(sf_bus):
    bus = sf_bus.bus
    publisher = bus.socket(SocketKind.XPUB, owner="a.pub")
    publisher.bind("tcp://127.0.0.1:7001")
    subscriber = bus.socket(SocketKind.SUB, owner="b.sub", hwm=3)
    subscriber.connect("tcp://127.0.0.1:7001")
    subscriber.subscribe(b"")
    sent = [publisher.send([b"t", bytes([n])]) for n in range(5)]
    assert sent == [True] * 5  # as ZMQ PUB: the full subscriber loses its copy, silently
    assert [subscriber.recv()[1] for _ in range(3)] == [b"\x00", b"\x01", b"\x02"]
    publisher.close()
    subscriber.close()


def test_datetime_now_in_a_handler_follows_the_virtual_clock(sf_service, sf_bus):
    shop = sf_service(SERVICES / "shop.py")
    shop.stub("prices", returns={"price": Decimal(1)})
    assert shop.request("quote", {"symbol": "A", "qty": 1})["at"] == START
    sf_bus.advance(90)
    assert shop.request("quote", {"symbol": "A", "qty": 1})["at"] == START + timedelta(
        seconds=90)


def _scenario(seed: int) -> list[str]:
    from service_framework_testing.bus import TestBus

    bus = TestBus(MemoryBus(seed=seed, start=START))
    try:
        bus.faults.drop(link=("requester", "replyer"), probability=0.3)
        bus.faults.duplicate(link=("replyer", "requester"), probability=0.3)
        replyers = [bus.service(EXAMPLES / "echo" / "replyer.py", addresses={
            "connections": {"in": {"echo": {"replyer": f"127.0.0.1:{9000 + n}"}}}},
            config={"prefix": f"{n}:"}) for n in range(3)]
        requester = bus.service(EXAMPLES / "echo" / "requester.py", addresses={
            "connections": {"out": {"echo": {"requester": [
                f"127.0.0.1:{9000 + n}" for n in range(3)]}}}},
            config={"count": 12}, main_mode=True)
        try:
            requester.run_main()
        except RequestTimeout:
            pass  # a request may lose all its attempts: the trace is what is compared
        assert len(replyers) == 3
        return list(bus.deliveries)
    finally:
        bus.close()


def test_one_seed_gives_the_same_trace_byte_for_byte_and_another_seed_does_not():
    first, again, other = _scenario(7), _scenario(7), _scenario(8)
    assert "\n".join(first).encode() == "\n".join(again).encode()
    assert first != other


def test_a_crashed_service_can_be_restarted(sf_bus):
    replyer, requester = echo_pair(sf_bus, count=1)
    requester.run_main()
    sf_bus.faults.crash("replyer")
    with pytest.raises(RequestTimeout):
        requester.run_main()
    sf_bus.faults.restart("replyer")
    requester.run_main()
    # A restart imports the module again: its request counter starts from zero.
    assert requester.sent[-1].reply == {"text": "> hello 0", "count": 1,
                                        "amount": Decimal("0.00"), "at": START}
    assert replyer.running


LEAKY_TEST = """
from service_framework import Service

def test_leaks_a_service(sf_bus):
    Service(service_path={path!r}, addresses={{"connections": {{"in": {{"echo": {{
        "replyer": "127.0.0.1:{port}"}}}}}}}}).run_service()
"""


def test_a_test_that_leaks_a_running_service_fails_naming_it(pytester):
    from service_framework_testing.ports import free_port

    pytester.makepyfile(LEAKY_TEST.format(path=str(EXAMPLES / "echo" / "replyer.py"),
                                          port=free_port()))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*leaked running service*'replyer'*"])


def test_stubs_survive_a_crash_and_restart(sf_service, sf_bus):
    shop = sf_service(SERVICES / "shop.py")
    shop.stub("prices", returns={"price": Decimal(2)})
    sf_bus.crash("shop")
    sf_bus.restart("shop")
    assert shop.request("quote", {"symbol": "A", "qty": 1})["total"] == Decimal("2.20")


def test_args_to_a_stub_cross_the_codec_so_what_cannot_be_sent_fails(sf_service):
    import types
    from typing import Any

    from service_framework.wire.codec import CodecError

    module = types.ModuleType("sends_anything")
    module.connection_models = {"out": {"ext": {
        "connection_type": "requester", "required_arguments": {"payload": Any}}}}
    service = sf_service(module)
    service.stub("ext", returns={})
    assert service.runtime.to_send("connection", "ext", {"payload": (1, "x")}) == {}
    with pytest.raises(CodecError, match="cannot encode"):
        service.runtime.to_send("connection", "ext", {"payload": object()})


def test_a_virtual_clock_never_goes_back():
    clock = VirtualClock(START)
    clock.wait_until(5.0)
    clock.wait_until(5.0)  # the same instant is no move at all
    with pytest.raises(ValueError, match="never goes back"):
        clock.wait_until(4.0)
    with pytest.raises(ValueError, match="never goes back"):
        clock.set(0.0)
    assert clock.monotonic() == 5.0 and clock.now() == START + timedelta(seconds=5)


def test_a_request_served_past_the_callers_deadline_does_not_turn_time_back(sf_bus):
    import types

    def work(args, to_send, states, config):
        return to_send("connection", "nowhere", {})  # no replyer: times out after 2s

    slow = types.ModuleType("slow")
    slow.connection_models = {
        "in": {"work": {"connection_type": "replyer",
                        "required_creation_arguments": {"on_new_request": work}}},
        "out": {"nowhere": {"connection_type": "requester",
                            "optional_creation_arguments": {"timeout_s": 2.0}}}}
    client = types.ModuleType("client")
    client.connection_models = {"out": {"work": {
        "connection_type": "requester", "optional_creation_arguments": {"timeout_s": 0.5}}}}
    sf_bus.service(slow, addresses={"connections": {"in": {"work": {"replyer": "127.0.0.1:1"}},
                                                    "out": {"nowhere": {
                                                        "requester": "127.0.0.1:2"}}}})
    caller = sf_bus.service(client, addresses={"connections": {"out": {"work": {
        "requester": "127.0.0.1:1"}}}})
    sf_bus.faults.drop(link=("slow", "client"))  # the late error reply is lost too
    with pytest.raises(RequestTimeout):
        caller.runtime.to_send("connection", "work", {})
    # The inner wait (2s) ran inside the outer one (0.5s): time stays where it went.
    assert sf_bus.clock.monotonic() == pytest.approx(2.0)
