"""`--metrics HOST:PORT`: Prometheus metrics of a service, per connection and per state,
from prometheus-client; off by default (issue 14, item 3)."""

from __future__ import annotations

import signal
import urllib.request

import pytest
import zmq
from helpers import (
    endpoint,
    finish,
    free_port,
    make_module,
    port_is_listening,
    run_cli,
    start_cli,
    wait_until,
)
from prometheus_client.parser import text_string_to_metric_families

from service_framework import RemoteError, RequestTimeout, Service
from service_framework.wire.envelope import encode_request


def scrape(port: int) -> dict[tuple, float]:
    """{(sample name, sorted labels without `service`): value} from the /metrics page."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = tuple(sorted((k, v) for k, v in sample.labels.items() if k != "service"))
            samples[(sample.name, labels)] = sample.value
    return samples


def echo_module():
    def on_echo(args, to_send, states, config):
        if args["text"] == "bad":
            raise ValueError("bad text")
        return {"text": args["text"]}

    return make_module("metrics_echo", connection_models={"in": {"echo": {
        "connection_type": "replyer", "required_creation_arguments": {"on_new_request": on_echo},
        "required_arguments": {"text": str}, "required_return_arguments": {"text": str}}}})


def client_module():
    requester = {"connection_type": "requester", "required_arguments": {"text": str},
                 "required_return_arguments": {"text": str},
                 "optional_creation_arguments": {"timeout_s": 0.2, "retries": 1}}
    return make_module("metrics_client", connection_models={"out": {
        "echo": requester, "void": requester}},
        state_models={"out": {"book": {"state_type": "delta_update_out",
                                       "optional_arguments": {"levels": {str: int}}}}})


def consumer_module():
    def on_update(update, to_send, states, config):
        pass

    return make_module("metrics_consumer", state_models={"in": {"book": {
        "state_type": "delta_update_in", "optional_arguments": {"levels": {str: int}},
        "optional_creation_arguments": {"on_update": on_update, "heartbeat_s": 0.1}}}})


@pytest.fixture
def services():
    started: list[Service] = []
    yield started
    for service in reversed(started):
        service.stop_service()


def test_requests_errors_timeouts_retries_and_states_are_counted(services):
    echo_port, publisher, snapshots = free_port(), endpoint(free_port()), endpoint(free_port())
    echo = Service(service_module=echo_module(), console_loglevel="WARNING",
                   addresses={"connections": {"in": {"echo": {"replyer": endpoint(echo_port)}}}},
                   metrics="127.0.0.1:0")
    services.append(echo.run_service())
    client = Service(service_module=client_module(), console_loglevel="WARNING",
                     addresses={"connections": {"out": {
                         "echo": {"requester": endpoint(echo_port)},
                         "void": {"requester": endpoint(free_port())}}},  # nothing there
                         "states": {"out": {"book": {"publisher": publisher,
                                                     "replyer": snapshots}}}},
                     metrics="127.0.0.1:0")
    services.append(client.run_service())
    to_send = client.runtime.to_send
    for text in ("a", "b", "c"):
        assert to_send("connection", "echo", {"text": text}) == {"text": text}
    with pytest.raises(RemoteError):
        to_send("connection", "echo", {"text": "bad"})
    with pytest.raises(RequestTimeout):
        to_send("connection", "void", {"text": "x"})  # two attempts, then the error
    to_send("state", "book", {"levels": {"a": 1}, "is_snapshot": True})
    consumer = Service(service_module=consumer_module(), console_loglevel="WARNING",
                       addresses={"states": {"in": {"book": {"subscriber": publisher,
                                                             "requester": snapshots}}}},
                       metrics="127.0.0.1:0")
    services.append(consumer.run_service())
    state = consumer.runtime.in_states["book"]
    wait_until(lambda: state.synced, timeout=10, message="the consumer in sync")
    for n in range(2, 5):
        to_send("state", "book", {"levels": {"a": n}})
    wait_until(lambda: state.seq == 4, timeout=10, message="three deltas")

    served = scrape(echo.metrics.port)
    assert served[("service_framework_messages_total", (
        ("direction", "in"), ("kind", "request"), ("name", "echo")))] == 4
    assert served[("service_framework_messages_total", (
        ("direction", "out"), ("kind", "reply"), ("name", "echo")))] == 3
    assert served[("service_framework_messages_total", (
        ("direction", "out"), ("kind", "error"), ("name", "echo")))] == 1
    assert served[("service_framework_handler_seconds_count", (("name", "echo"),))] == 4

    asked = scrape(client.metrics.port)
    assert asked[("service_framework_messages_total", (
        ("direction", "out"), ("kind", "request"), ("name", "echo")))] == 4
    assert asked[("service_framework_request_timeouts_total", (("name", "void"),))] == 1
    assert asked[("service_framework_request_attempts_timed_out_total",
                  (("name", "void"),))] == 2
    assert asked[("service_framework_request_retries_total", (("name", "void"),))] == 1
    assert asked[("service_framework_request_timeouts_total", (("name", "echo"),))] == 0
    assert asked[("service_framework_state_seq", (("name", "book"), ("side", "out")))] == 4
    assert asked[("service_framework_state_snapshot_bytes",
                  (("name", "book"), ("side", "out")))] > 0

    followed = scrape(consumer.metrics.port)
    assert followed[("service_framework_state_seq", (("name", "book"), ("side", "in")))] == 4
    assert followed[("service_framework_state_synced", (("name", "book"),))] == 1
    assert followed[("service_framework_state_snapshot_requests_total", (("name", "book"),))] == 1
    assert followed[("service_framework_state_resyncs_total", (("name", "book"),))] == 0
    assert followed[("service_framework_handler_seconds_count", (("name", "book"),))] >= 3
    epochs = [labels for (name, labels) in followed if name == "service_framework_state_epoch"]
    assert epochs == [(("epoch", client.runtime.out_states["book"].epoch), ("name", "book"),
                       ("side", "in"))]


def test_metrics_are_off_by_default_and_nothing_listens(services):
    port = free_port()
    service = Service(service_module=echo_module(), console_loglevel="WARNING",
                      addresses={"connections": {"in": {"echo": {"replyer": endpoint(port)}}}})
    services.append(service.run_service())
    assert service.metrics is None
    assert service.runtime.event_listeners == []
    assert "run_handler" not in vars(service.runtime)  # the class's, untimed


def test_the_cli_serves_metrics_until_sigterm(tmp_path):
    import json

    from helpers import TEST_SERVICES

    metrics_port, port = free_port(), free_port()
    addresses = tmp_path / "addresses.json"
    addresses.write_text(json.dumps({"connections": {"in": {"echo": {
        "replyer": endpoint(port)}}}}))
    process = start_cli("-s", TEST_SERVICES / "named_replica.py", "-a", addresses,
                        "--metrics", f"127.0.0.1:{metrics_port}")
    key = ("service_framework_messages_total",
           (("direction", "in"), ("kind", "request"), ("name", "echo")))
    try:
        wait_until(lambda: port_is_listening(metrics_port), timeout=20,
                   message="the metrics endpoint")
        assert key not in scrape(metrics_port)  # no request yet: no such series
        client = zmq.Context.instance().socket(zmq.DEALER)
        client.linger = 0
        client.connect(f"tcp://{endpoint(port)}")
        for n in range(3):
            client.send(encode_request("w", {"text": str(n)}, f"r{n}", max_bytes=1 << 20))
            assert client.poll(10_000)
            client.recv()
        client.close(0)
        assert scrape(metrics_port)[key] == 3
    finally:
        code, _, err = finish(process, send=signal.SIGTERM)
    assert code == 0, err
    assert not port_is_listening(metrics_port)


@pytest.mark.parametrize("value", ["nowhere", "127.0.0.1:http", "127.0.0.1:70000",
                                   "127.0.0.1:\u00b2", "127.0.0.1:\u0663"])  # ², Arabic 3
def test_a_bad_metrics_address_exits_2_naming_the_flag(value):
    result = run_cli("-s", "examples/echo/replyer.py", "-a", "examples/echo/addresses.json",
                     "--metrics", value)
    assert result.returncode == 2 and "--metrics" in result.stderr, result.stderr


def test_a_restart_counts_each_message_once(sf_bus):
    """A restart hands the old runtime's listeners on: the metrics' one must not be doubled."""
    service = Service(service_module=echo_module(), transport=sf_bus.bus,
                      console_loglevel="WARNING", metrics="127.0.0.1:0",
                      addresses={"connections": {"in": {"echo": {"replyer": "echo:1"}}}})
    service.run_service()
    try:
        sf_bus.crash(service.name)
        sf_bus.restart(service.name)
        listeners = service.runtime.event_listeners
        assert listeners.count(service.metrics.on_event) == 1
        service.runtime.emit("in", "request", "echo", "w", args={})
        key = ("service_framework_messages_total",
               (("direction", "in"), ("kind", "request"), ("name", "echo")))
        assert scrape(service.metrics.port)[key] == 1
    finally:
        service.stop_service()


def test_the_metrics_endpoint_listens_while_the_service_runs(sf_bus):
    """Not before its start, not after its stop; again for `serve_again`; a crashed
    service keeps it for its restart until `stop_service()`."""
    port = free_port()
    service = Service(service_module=echo_module(), transport=sf_bus.bus,
                      console_loglevel="WARNING", metrics=f"127.0.0.1:{port}",
                      addresses={"connections": {"in": {"echo": {"replyer": "echo:1"}}}})
    try:
        assert not port_is_listening(port)
        service.stop_service()  # never started: nothing to stop, nothing left listening
        assert not port_is_listening(port)
        service.run_service()
        assert port_is_listening(port)
        service.stop_service()
        assert not port_is_listening(port)
        service.serve_again()
        assert port_is_listening(port)
        service.runtime.emit("in", "request", "echo", "w", args={})
        key = ("service_framework_messages_total",
               (("direction", "in"), ("kind", "request"), ("name", "echo")))
        assert scrape(port)[key] == 1
        service.crash()
        assert port_is_listening(port)  # kept for a restart
        service.stop_service()
        assert not port_is_listening(port)
    finally:
        service.stop_service()


def test_a_handler_shared_by_two_connections_is_timed_under_each(services):
    def on_echo(args, to_send, states, config):
        return {"text": args["text"]}

    replyer = {"connection_type": "replyer", "required_creation_arguments": {
        "on_new_request": on_echo}, "required_arguments": {"text": str},
        "required_return_arguments": {"text": str}}
    ports = {"alpha": free_port(), "beta": free_port()}
    service = Service(service_module=make_module("metrics_shared", connection_models={"in": {
        "alpha": replyer, "beta": replyer}}), console_loglevel="WARNING",
        metrics="127.0.0.1:0", addresses={"connections": {"in": {
            name: {"replyer": endpoint(port)} for name, port in ports.items()}}})
    services.append(service.run_service())
    client = Service(service_module=client_module(), console_loglevel="WARNING",
                     addresses={"connections": {"out": {
                         "echo": {"requester": endpoint(ports["alpha"])},
                         "void": {"requester": endpoint(ports["beta"])}}},
                         "states": {"out": {"book": {"publisher": endpoint(free_port()),
                                                     "replyer": endpoint(free_port())}}}})
    services.append(client.run_service())
    for connection, count in (("echo", 3), ("void", 1)):
        for _ in range(count):
            assert client.runtime.to_send("connection", connection, {"text": "x"})
    samples = scrape(service.metrics.port)
    assert samples[("service_framework_handler_seconds_count", (("name", "alpha"),))] == 3
    assert samples[("service_framework_handler_seconds_count", (("name", "beta"),))] == 1


def test_an_in_states_epoch_label_is_cut_to_a_bounded_length(sf_bus):
    """The epoch comes from the out side, a peer: a 200-character one is not a label."""
    producer = Service(service_module=client_module(), transport=sf_bus.bus,
                       console_loglevel="WARNING", addresses={"connections": {"out": {
                           "echo": {"requester": "echo:1"}, "void": {"requester": "void:1"}}},
                           "states": {"out": {"book": {"publisher": "book:1",
                                                       "replyer": "book:2"}}}})
    consumer = Service(service_module=consumer_module(), transport=sf_bus.bus,
                       console_loglevel="WARNING", metrics="127.0.0.1:0",
                       addresses={"states": {"in": {"book": {"subscriber": "book:1",
                                                             "requester": "book:2"}}}})
    producer.run_service()
    consumer.run_service()
    try:
        producer.runtime.out_states["book"].core.restart(epoch="e" * 200)
        producer.runtime.to_send("state", "book", {"levels": {"a": 1}})
        sf_bus.run_until_idle()
        assert consumer.runtime.in_states["book"].synced
        epochs = [dict(labels)["epoch"] for (sample, labels) in scrape(consumer.metrics.port)
                  if sample == "service_framework_state_epoch"]
        assert epochs == ["e" * 32]
    finally:
        consumer.stop_service()
        producer.stop_service()


def test_a_metrics_port_in_use_exits_2_naming_the_flag():
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        result = run_cli("-s", "examples/echo/replyer.py", "-a", "examples/echo/addresses.json",
                         "--metrics", f"127.0.0.1:{taken.getsockname()[1]}")
    assert result.returncode == 2, result.stderr
    assert "--metrics: cannot listen" in result.stderr
