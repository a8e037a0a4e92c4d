"""Starting, idling, signals and stopping of services on real ZeroMQ."""

from __future__ import annotations

import logging
import signal
import subprocess
import threading
import time
from typing import Any

import pytest
import zmq
from helpers import (
    TEST_SERVICES,
    ask,
    catches_signal,
    cpu_seconds,
    endpoint,
    finish,
    free_port,
    make_module,
    port_is_listening,
    replyer_addresses,
    requester_addresses,
    start_cli,
    wait_until,
)

from service_framework import RemoteError, Service, get_logger


def ping_replyer(name: str = "pinger", *, on_call=None, **attributes: Any) -> Any:
    calls: list[dict] = []

    def on_new_request(args, to_send, states, config):
        calls.append(args)
        if on_call is not None:
            return on_call(args)
        return {"pong": args["ping"]}

    module = make_module(name, connection_models={"in": {"ping": {
        "connection_type": "replyer",
        "required_creation_arguments": {"on_new_request": on_new_request},
        "required_arguments": {"ping": int},
        "required_return_arguments": {"pong": int},
    }}}, **attributes)
    module.calls = calls
    return module


def ping_requester(*names: str, timeout_s: float = 2.0, **attributes: Any) -> Any:
    return make_module("ping_client", connection_models={"out": {name: {
        "connection_type": "requester",
        "required_arguments": {"ping": int},
        "required_return_arguments": {"pong": int},
        "optional_creation_arguments": {"timeout_s": timeout_s},
    } for name in names or ("ping",)}}, **attributes)


def bind_raw(port: int) -> None:
    """Binds (then closes) a raw ZMQ socket on the port: raises if it is still taken."""
    raw = zmq.Context.instance().socket(zmq.ROUTER)
    try:
        raw.bind(f"tcp://{endpoint(port)}")
    finally:
        raw.close(linger=0)


# -- in this process ---------------------------------------------------------------------
def test_stop_service_returns_quickly_and_frees_the_port(services):
    port = free_port()
    replyer = Service(service_module=ping_replyer(), addresses=replyer_addresses("ping", port),
                      console_loglevel="WARNING").run_service()
    requester = services.start(ping_requester(), requester_addresses("ping", port))
    assert ask(requester, "ping", {"ping": 1}) == {"pong": 1}
    started = time.monotonic()
    replyer.stop_service()
    assert time.monotonic() - started < 2.0
    bind_raw(port)  # immediately: no retry, no wait


def test_stop_service_lets_the_handler_in_flight_answer(services):
    port = free_port()
    entered, release = threading.Event(), threading.Event()

    def slow(args):
        entered.set()
        release.wait(5)
        return {"pong": args["ping"]}

    replyer = Service(service_module=ping_replyer(on_call=slow),
                      addresses=replyer_addresses("ping", port),
                      console_loglevel="WARNING").run_service()
    requester = services.start(ping_requester(), requester_addresses("ping", port))
    replies: list = []
    asking = threading.Thread(target=lambda: replies.append(ask(requester, "ping", {"ping": 7})))
    asking.start()
    assert entered.wait(5)
    stopping = threading.Thread(target=replyer.stop_service)
    started = time.monotonic()
    stopping.start()
    release.set()
    stopping.join(5)
    asking.join(5)
    assert time.monotonic() - started < 2.0
    assert replies == [{"pong": 7}]
    bind_raw(port)


def test_several_services_in_one_process(services):
    ports = {name: free_port() for name in ("a", "b", "c")}
    for name, port in ports.items():
        services.start(ping_replyer(f"replyer_{name}",
                                    on_call=lambda args, n=ord(name): {"pong": args["ping"] + n}),
                       replyer_addresses("ping", port))
    client = services.start(ping_requester(*ports), {"connections": {"out": {
        name: {"requester": endpoint(port)} for name, port in ports.items()}}})
    for name in ports:
        assert ask(client, name, {"ping": 1}) == {"pong": 1 + ord(name)}


def test_context_manager_serves_then_stops(services):
    port = free_port()
    client = services.start(ping_requester(), requester_addresses("ping", port))
    with Service(service_module=ping_replyer(), addresses=replyer_addresses("ping", port),
                 console_loglevel="WARNING") as replyer:
        assert ask(client, "ping", {"ping": 3}) == {"pong": 3}
    assert replyer.wait_stopped(2.0)
    bind_raw(port)


def test_init_function_runs_once_before_serving(services):
    port = free_port()
    inits: list[dict] = []

    def init_function(to_send, states, config):
        inits.append(dict(config))

    def on_call(args):
        assert len(inits) == 1  # the service served nothing before init ran
        return {"pong": len(inits)}

    replyer = services.start(ping_replyer(on_call=on_call, init_function=init_function,
                                          config_model={"optional": {"k": int}}),
                             replyer_addresses("ping", port), config={"k": 5})
    assert inits == [{"k": 5}]
    client = services.start(ping_requester(), requester_addresses("ping", port))
    assert [ask(client, "ping", {"ping": n})["pong"] for n in range(3)] == [1, 1, 1]
    replyer.stop_service()
    assert len(inits) == 1


def test_init_function_runs_before_main():
    order: list[str] = []
    module = make_module("main_after_init",
                         init_function=lambda to_send, states, config: order.append("init"),
                         main=lambda to_send, config: order.append("main") or "done")
    service = Service(service_module=module, console_loglevel="WARNING")
    assert service.run_service_as_main_blocking() == "done"
    assert order == ["init", "main"]


def test_log_records_carry_the_workflow_id_across_the_wire(services, caplog):
    port = free_port()
    log = get_logger()

    def on_call(args):
        log.warning("answering %d", args["ping"])
        return {"pong": args["ping"]}

    def main(to_send, config):
        log.warning("asking")
        return to_send("connection", "ping", {"ping": 4})

    services.start(ping_replyer(on_call=on_call), replyer_addresses("ping", port))
    client = Service(service_module=ping_requester(main=main),
                     addresses=requester_addresses("ping", port), console_loglevel="WARNING")
    with caplog.at_level(logging.WARNING, logger="service_framework"):
        assert client.run_service_as_main_blocking() == {"pong": 4}
    asking = [r for r in caplog.records if r.getMessage() == "asking"]
    answering = [r for r in caplog.records if r.getMessage() == "answering 4"]
    assert len(asking) == len(answering) == 1
    workflow_id = asking[0].workflow_id
    assert workflow_id and workflow_id != "-"
    assert answering[0].workflow_id == workflow_id


def test_main_arity_decides_whether_states_are_passed():
    def main_without_states(to_send, config):
        return ("2 args", config["k"])

    def main_with_states(to_send, states, config):
        return ("3 args", dict(states), config["k"])

    config_model = {"required": {"k": int}}
    two = Service(service_module=make_module("two", main=main_without_states,
                                             config_model=config_model),
                  config={"k": 1}, console_loglevel="WARNING")
    three = Service(service_module=make_module("three", main=main_with_states,
                                               config_model=config_model),
                    config={"k": 2}, console_loglevel="WARNING")
    assert two.run_service_as_main_blocking() == ("2 args", 1)
    assert three.run_service_as_main_blocking() == ("3 args", {}, 2)


def test_main_mode_non_blocking_stops_when_main_returns(services):
    port = free_port()
    services.start(ping_replyer(), replyer_addresses("ping", port))
    module = ping_requester(main=lambda to_send, config: to_send("connection", "ping",
                                                                 {"ping": 9}))
    client = Service(service_module=module, addresses=requester_addresses("ping", port),
                     console_loglevel="WARNING").run_service_as_main()
    assert client.wait_stopped(5.0)
    assert client.main_result == {"pong": 9}


# -- through the command line, in a child process ----------------------------------------
def start_service(tmp_path, service: str, *extra: str) -> tuple[Any, int]:
    """Runs a test service under the CLI; returns once it routes signals and listens."""
    port = free_port()
    addresses = tmp_path / "addresses.json"
    addresses.write_text(
        f'{{"connections": {{"in": {{"ping": {{"replyer": "{endpoint(port)}"}}, '
        f'"news": {{"subscriber": "{endpoint(free_port())}"}}}}}}}}')
    process = start_cli("-s", TEST_SERVICES / service, "-a", addresses, "-cl", "WARNING",
                        *extra)
    try:
        wait_until(lambda: catches_signal(process.pid, signal.SIGTERM) or process.poll(),
                   10, message="the service to install its signal handlers")
        assert process.poll() is None, finish(process)
        wait_until(lambda: port_is_listening(port), 5, message="the replyer to listen")
    except BaseException:
        process.kill()
        raise
    return process, port


@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGINT"])
def test_signal_runs_the_handler_and_exits_0(tmp_path, signal_name):
    process, _ = start_service(tmp_path, "signals_service.py", "--marker_dir", str(tmp_path))
    assert (tmp_path / "init").read_text() == "ran"
    signum = getattr(signal, signal_name)
    returncode, out, err = finish(process, send=signum)
    assert returncode == 0, err
    assert (tmp_path / signal_name).read_text() == str(int(signum))
    assert "Traceback" not in err


@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGINT"])
def test_signal_without_handlers_exits_0(tmp_path, signal_name):
    process, _ = start_service(tmp_path, "plain_service.py")
    returncode, out, err = finish(process, send=getattr(signal, signal_name))
    assert returncode == 0, err
    assert "Traceback" not in err


@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGINT"])
def test_signal_in_main_mode_runs_the_handler_and_exits_0(tmp_path, signal_name):
    process = start_cli("-s", TEST_SERVICES / "main_until_signal.py", "-m", "-cl", "WARNING",
                        "--marker_dir", str(tmp_path))
    try:
        wait_until(lambda: (tmp_path / "main_started").exists() or process.poll() is not None,
                   10, message="main to start")
    except BaseException:
        process.kill()
        raise
    signum = getattr(signal, signal_name)
    returncode, out, err = finish(process, send=signum)
    assert returncode == 0, err
    assert (tmp_path / signal_name).read_text() == str(int(signum))
    assert not (tmp_path / "main_finished").exists()


def test_idle_service_uses_no_measurable_cpu(tmp_path):
    process, port = start_service(tmp_path, "plain_service.py")
    try:
        before, started = cpu_seconds(process.pid), time.monotonic()
        with pytest.raises(subprocess.TimeoutExpired):  # it keeps running for the window
            process.wait(timeout=1.5)
        used = cpu_seconds(process.pid) - before
        elapsed = time.monotonic() - started
    finally:
        returncode, _, err = finish(process, send=signal.SIGTERM)
    assert returncode == 0, err
    assert used / elapsed < 0.05, f"idle service used {used:.3f}s CPU in {elapsed:.2f}s"


def _stop_with_a_second_request_queued(services, drain_s: float):
    """Request 1 is in its handler when the stop comes; request 2 is already queued.

    Returns what request 2 got: its reply, or the exception it raised.
    """
    port = free_port()
    entered, release = threading.Event(), threading.Event()
    holder: dict[str, Any] = {}

    def first_blocks(args):
        if args["ping"] == 1:
            entered.set()
            release.wait(5)
            # request 2 is waiting in the replyer's socket (polled, not read), then stop
            assert holder["replyer"].runtime.in_connections["ping"].socket.raw.poll(5000)
            holder["replyer"].runtime.request_stop()
        return {"pong": args["ping"]}

    replyer = Service(service_module=ping_replyer(on_call=first_blocks),
                      addresses=replyer_addresses("ping", port), console_loglevel="CRITICAL",
                      drain_s=drain_s)
    holder["replyer"] = replyer.run_service()
    first = services.start(ping_requester(), requester_addresses("ping", port))
    second = services.start(ping_requester(timeout_s=3.0), requester_addresses("ping", port))
    outcomes: dict[int, Any] = {}

    def call(client, number):
        try:
            outcomes[number] = ask(client, "ping", {"ping": number})
        except Exception as error:  # inspected below
            outcomes[number] = error

    threads = [threading.Thread(target=call, args=(first, 1))]
    threads[0].start()
    assert entered.wait(5)
    threads.append(threading.Thread(target=call, args=(second, 2)))
    threads[1].start()
    started = time.monotonic()
    release.set()
    for thread in threads:
        thread.join(5)
    replyer.stop_service()
    assert outcomes[1] == {"pong": 1}
    return outcomes[2], time.monotonic() - started


def test_requests_already_received_at_stop_are_answered(services):
    outcome, _ = _stop_with_a_second_request_queued(services, drain_s=1.0)
    assert outcome == {"pong": 2}


def test_past_the_drain_deadline_a_queued_request_gets_an_error_reply_not_a_timeout(services):
    outcome, elapsed = _stop_with_a_second_request_queued(services, drain_s=0.0)
    assert isinstance(outcome, RemoteError), outcome
    assert outcome.remote_type == "ServiceStopping"
    assert elapsed < 2.0
