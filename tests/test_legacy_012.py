"""Services written in 0.0.12's style (tests/legacy/) run unchanged, on the CLI and in-process.

Each scenario runs real processes (`python -m service_framework -s … -a … [-c …] [-m]
[KEY VALUE …]`) on 127.0.0.1 with the ports of its addresses files rewritten to free ones,
and checks what can be seen from outside: what a main-mode side prints, what a subscriber
wrote to its file, the value a state consumer logs when stopped, and every exit status.
The XPUB/XSUB bus of the bus scenarios is pyzmq's `zmq.proxy_steerable` on a daemon thread
of the test. Every wait has a deadline; a failure names its scenario and shows the tail of
each process's output.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
import zmq
from helpers import REPO, cli_command, free_port, port_is_listening, wait_until

LEGACY = Path(__file__).resolve().parent / "legacy"
BUS_PUBLISHERS_PORT = 9100  # the XSUB side of the bus in tests/legacy/*/…_addresses.json
BUS_SUBSCRIBERS_PORT = 9101  # its XPUB side
TAIL_LINES = 25
_bus_ids = itertools.count()


# -- the bus -------------------------------------------------------------------------------
class Bus:
    """An XPUB/XSUB proxy on free ports: publishers connect to `xsub_port`, subscribers to
    `xpub_port`. Stopped through its control socket, so its ports are free afterwards."""

    def __init__(self) -> None:
        self.context = zmq.Context()
        self.xsub = self.context.socket(zmq.XSUB)
        self.xpub = self.context.socket(zmq.XPUB)
        self.xsub_port = self.xsub.bind_to_random_port("tcp://127.0.0.1")
        self.xpub_port = self.xpub.bind_to_random_port("tcp://127.0.0.1")
        endpoint = f"inproc://legacy-bus-{next(_bus_ids)}"
        self.control = self.context.socket(zmq.PAIR)
        self.control.bind(endpoint)
        self._control_end = self.context.socket(zmq.PAIR)
        self._control_end.connect(endpoint)
        self.thread = threading.Thread(
            target=zmq.proxy_steerable, args=(self.xsub, self.xpub, None, self._control_end),
            name="legacy-bus", daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.control.send(b"TERMINATE")
        self.thread.join(5)
        for socket in (self.xsub, self.xpub, self.control, self._control_end):
            socket.close(linger=0)
        if not self.thread.is_alive():
            self.context.term()


@pytest.fixture
def bus():
    proxy = Bus()
    yield proxy
    proxy.close()


# -- a scenario: its processes, their output, a failure that shows it ---------------------
class Process:
    def __init__(self, label: str, args: list[str], directory: Path) -> None:
        self.label = label
        self.args = args
        self.out_path = directory / f"{label}.stdout"
        self.err_path = directory / f"{label}.stderr"
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env.pop("PYTHONPATH", None)
        with open(self.out_path, "w") as out, open(self.err_path, "w") as err:
            self.popen = subprocess.Popen(cli_command(*args), cwd=REPO, env=env,
                                          stdout=out, stderr=err, text=True)
        self.started = time.monotonic()
        self.ended: float | None = None

    @property
    def out(self) -> str:
        return self.out_path.read_text()

    @property
    def err(self) -> str:
        return self.err_path.read_text()

    def poll(self) -> int | None:
        code = self.popen.poll()
        if code is not None and self.ended is None:
            self.ended = time.monotonic()
        return code

    @property
    def elapsed(self) -> float:
        return (self.ended or time.monotonic()) - self.started

    def tail(self) -> str:
        code = self.poll()
        status = "running" if code is None else f"exit status {code}"
        parts = [f"--- {self.label} ({status}): service_framework {' '.join(self.args)}"]
        for name, text in (("stdout", self.out), ("stderr", self.err)):
            lines = text.splitlines()[-TAIL_LINES:]
            parts.append(f"    {name} (last {len(lines)} lines):")
            parts.extend(f"    | {line}" for line in lines)
        return "\n".join(parts)


class Scenario:
    """One scenario's address files (ports rewritten to free ones, shared across its files),
    its processes and its failure message."""

    def __init__(self, name: str, directory: Path, fixed_ports: dict[int, int] | None = None):
        self.name = name
        self.directory = directory
        self.ports: dict[int, int] = dict(fixed_ports or {})
        self.processes: dict[str, Process] = {}

    # addresses
    def addresses(self, relative: str) -> Path:
        """tests/legacy/<relative>, copied into the scenario's folder with its ports
        remapped (one original port gets one new port in every file of the scenario)."""
        source = LEGACY / relative

        def remap(value):
            if isinstance(value, list):
                return [remap(item) for item in value]
            if isinstance(value, dict):
                return {key: remap(item) for key, item in value.items()}
            host, _, port = value.rpartition(":")
            if int(port) not in self.ports:
                self.ports[int(port)] = free_port()
            return f"{host}:{self.ports[int(port)]}"

        target = self.directory / source.name
        target.write_text(json.dumps(remap(json.loads(source.read_text())), indent=4))
        return target

    def port(self, original: int) -> int:
        return self.ports[original]

    # processes
    def start(self, label: str, service: str, addresses: Path, *, config: str | None = None,
              main: bool = False, extras: tuple = ()) -> Process:
        args = ["-s", str(LEGACY / service), "-a", str(addresses)]
        if config is not None:
            args += ["-c", str(LEGACY / config)]
        if main:
            args.append("-m")
        args += [str(extra) for extra in extras]
        process = Process(label, args, self.directory)
        self.processes[label] = process
        return process

    def wait(self, condition, what: str, timeout: float = 15.0) -> None:
        """Waits for `condition` (deadline `timeout`); fails at once if a process it waits on
        has exited first."""
        def ready():
            if condition():
                return True
            for process in self.processes.values():
                if process.poll() not in (None, 0):
                    raise AssertionError(f"{process.label} exited with status "
                                         f"{process.poll()} while waiting for {what}")
            return False
        wait_until(ready, timeout, interval=0.01, message=what)

    def wait_listening(self, label: str, original_port: int, timeout: float = 15.0) -> None:
        process = self.processes[label]
        port = self.port(original_port)

        def listening():
            if process.poll() is not None:
                raise AssertionError(f"{label} exited (status {process.poll()}) before "
                                     f"listening on port {port}")
            return port_is_listening(port)
        wait_until(listening, timeout, interval=0.01, message=f"{label} to listen on {port}")

    def finish(self, label: str, *, timeout: float = 20.0, send: int | None = None) -> int:
        """Signals a process (optionally), waits for it to exit, returns its exit status."""
        process = self.processes[label]
        if send is not None and process.poll() is None:
            process.popen.send_signal(send)
        try:
            process.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            process.popen.kill()
            process.popen.wait()
            raise AssertionError(f"{label} did not exit within {timeout:g}s") from None
        process.poll()
        return process.popen.returncode

    def expect_exit_0(self, label: str, **kwargs) -> Process:
        code = self.finish(label, **kwargs)
        assert code == 0, f"{label} exited with status {code}, expected 0"
        return self.processes[label]

    def close(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.popen.kill()
                process.popen.wait()
                process.poll()

    def report(self, error: BaseException) -> str:
        return "\n".join([f"scenario {self.name!r}: {type(error).__name__}: {error}",
                          *(process.tail() for process in self.processes.values())])


class scenario:
    """`with scenario(name, tmp_path) as run:` — any failure inside is re-raised as an
    AssertionError naming the scenario, with the output tails of its processes; processes
    still running at the end are killed."""

    def __init__(self, name: str, directory: Path, fixed_ports: dict[int, int] | None = None):
        self.run = Scenario(name, directory, fixed_ports)

    def __enter__(self) -> Scenario:
        return self.run

    def __exit__(self, kind, error, traceback) -> bool:
        self.run.close()
        if error is None or not isinstance(error, Exception):
            return False
        raise AssertionError(self.run.report(error)) from error


def lines_of(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def has_warning_about(text: str, *words: str) -> bool:
    """Whether one WARNING line of a log mentions every word (case-insensitively)."""
    return any("warning" in line.lower() and all(word.lower() in line.lower() for word in words)
               for line in text.splitlines())


# -- request/reply ---------------------------------------------------------------------------
def test_request_reply_with_a_main_mode_requester_and_bare_extras(tmp_path):
    with scenario("request/reply", tmp_path) as run:
        replyer = run.addresses("reqrep/replyer_addresses.json")
        requester = run.addresses("reqrep/requester_addresses.json")
        run.start("replyer", "reqrep/replyer.py", replyer, config="reqrep/replyer_config.json")
        run.wait_listening("replyer", 8877)
        run.start("requester", "reqrep/requester.py", requester,
                  config="reqrep/requester_config.json", main=True,
                  extras=("num_req_to_send", "10"))
        out = run.expect_exit_0("requester").out
        assert out.splitlines() == [f"reply {n}: echo: Hello World!" for n in range(10)] + [
            "got 10 replies"]
        assert has_warning_about(run.processes["requester"].err, "num_req_to_send"), \
            "no warning about the bare `num_req_to_send 10` extra"
        err = run.expect_exit_0("replyer", send=signal.SIGTERM).err
        assert "Replyer stopping after 10 replies" in err


# -- pub/sub ---------------------------------------------------------------------------------
MESSAGES = [{"msg_num": n, "text": f"message {n}"} for n in range(5)]


def _check_received(run: Scenario, output: Path, publisher: str) -> None:
    out = run.expect_exit_0(publisher).out
    assert out.splitlines() == ["published 5 messages"]
    run.wait(lambda: len(lines_of(output)) >= len(MESSAGES), "the subscriber to write 5 lines",
             timeout=10)
    err = run.expect_exit_0("subscriber", send=signal.SIGTERM).err
    assert [json.loads(line) for line in lines_of(output)] == MESSAGES
    assert "Subscriber stopping after 5 messages" in err


def test_pub_sub_publisher_binds_and_waits_for_its_subscriber(tmp_path):
    """`wait_after_creation_s` bounds the wait, `min_subscribers` ends it early."""
    output = tmp_path / "received.jsonl"
    with scenario("pub/sub, publisher binds", tmp_path) as run:
        publisher = run.addresses("pubsub/bind/publisher_addresses.json")
        subscriber = run.addresses("pubsub/bind/subscriber_addresses.json")
        run.start("subscriber", "pubsub/subscriber.py", subscriber,
                  extras=("output_path", output))
        run.start("publisher", "pubsub/publisher.py", publisher, main=True,
                  extras=("num_messages", "5"))
        _check_received(run, output, "publisher")
        elapsed = run.processes["publisher"].elapsed
        assert elapsed < 8.0, f"the publisher took {elapsed:.1f}s: it waited out " \
                              "wait_after_creation_s although its subscriber had joined"


def test_pub_sub_subscriber_binds(tmp_path):
    """`is_binder` subscriber; the `is_x_pub` publisher connects to it and publishes after
    `wait_after_creation_s` (its only way, in 0.0.12, to let the subscription arrive)."""
    output = tmp_path / "received.jsonl"
    with scenario("pub/sub, subscriber binds (is_binder)", tmp_path) as run:
        publisher = run.addresses("pubsub/binder/x_publisher_addresses.json")
        subscriber = run.addresses("pubsub/binder/binder_subscriber_addresses.json")
        run.start("subscriber", "pubsub/binder_subscriber.py", subscriber,
                  extras=("output_path", output))
        run.wait_listening("subscriber", 8878)
        run.start("x_publisher", "pubsub/x_publisher.py", publisher, main=True,
                  extras=("num_messages", "5"))
        _check_received(run, output, "x_publisher")


def test_pub_sub_through_a_bus(tmp_path, bus):
    output = tmp_path / "received.jsonl"
    with scenario("pub/sub through an XPUB/XSUB bus", tmp_path,
                  {BUS_PUBLISHERS_PORT: bus.xsub_port, BUS_SUBSCRIBERS_PORT: bus.xpub_port}) as run:
        publisher = run.addresses("pubsub/bus/bus_publisher_addresses.json")
        subscriber = run.addresses("pubsub/bus/subscriber_addresses.json")
        run.start("subscriber", "pubsub/subscriber.py", subscriber,
                  extras=("output_path", output))
        run.start("bus_publisher", "pubsub/bus_publisher.py", publisher, main=True,
                  extras=("num_messages", "5"))
        _check_received(run, output, "bus_publisher")


# -- states ----------------------------------------------------------------------------------
STATE_CASES = {
    "full-direct": ("full_direct", "full_producer", "full_consumer",
                    "consumer converged to num 5", "num_state converged to num=5 text=update 5"),
    "full-bus": ("full_bus", "full_bus_producer", "full_consumer",
                 "consumer converged to num 5", "num_state converged to num=5 text=update 5"),
    "delta-direct": ("delta_direct", "delta_producer", "delta_consumer",
                     "consumer converged to total 5",
                     "counts converged to total=5 seen=1:1,2:4,3:9,4:16,5:25"),
    "delta-bus": ("delta_bus", "delta_bus_producer", "delta_consumer",
                  "consumer converged to total 5",
                  "counts converged to total=5 seen=1:1,2:4,3:9,4:16,5:25"),
}


@pytest.mark.parametrize("case", list(STATE_CASES))
def test_states(tmp_path, request, case):
    folder, producer, consumer, printed, logged = STATE_CASES[case]
    fixed = {}
    if case.endswith("bus"):
        proxy = request.getfixturevalue("bus")
        fixed = {BUS_PUBLISHERS_PORT: proxy.xsub_port, BUS_SUBSCRIBERS_PORT: proxy.xpub_port}
    with scenario(f"state {case}", tmp_path, fixed) as run:
        producer_addresses = run.addresses(f"states/{folder}/{producer}_addresses.json")
        consumer_addresses = run.addresses(f"states/{folder}/{consumer}_addresses.json")
        run.start("consumer", f"states/{consumer}.py", consumer_addresses)
        run.start("producer", f"states/{producer}.py", producer_addresses, main=True,
                  extras=("num_updates", "5"))
        out = run.expect_exit_0("producer", timeout=30).out
        assert out.splitlines() == [printed]
        err = run.expect_exit_0("consumer", send=signal.SIGTERM).err
        assert re.search(rf"\b{re.escape(logged)}$", err, re.M), \
            f"the consumer did not log {logged!r}"
        if case.startswith("full"):  # no replyer/requester: no snapshots, and a warning
            logs = run.processes["producer"].err + err
            assert has_warning_about(logs, "snapshot"), \
                "no warning that the full-update state has no snapshots"


# -- external_request --------------------------------------------------------------------------
def test_external_request_with_func_to_call(tmp_path):
    with scenario("external_request (func_to_call)", tmp_path) as run:
        converter = run.addresses("external/converter_addresses.json")
        client = run.addresses("external/client_addresses.json")
        run.start("converter", "external/converter.py", converter,
                  config="external/converter_config.json")
        run.wait_listening("converter", 8890)
        run.start("client", "external/client.py", client, config="external/client_config.json",
                  main=True, extras=("amount", "40"))
        out = run.expect_exit_0("client").out
        assert out.splitlines() == ["40 EUR = 50.00 USD (rate 1.25)",
                                    "40 GBP = 60.00 USD (rate 1.5)"]
        run.expect_exit_0("converter", send=signal.SIGTERM)


# -- Service pairs in one process, with init_function -----------------------------------------
class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.setFormatter(logging.Formatter("%(levelname)s [%(service)s] %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if not hasattr(record, "service"):
            record.service = "-"
        self.lines.append(self.format(record))


class in_process:
    """`with in_process(name, tmp_path) as pair:` — `pair.service(file, config, addresses)`
    makes a `Service` (its addresses file rewritten to free ports); every service is stopped
    at the end; a failure is re-raised naming the scenario, with the last framework logs."""

    def __init__(self, name: str, directory: Path) -> None:
        self.name = name
        self.addresses = Scenario(name, directory)
        self.services: list = []
        self.records = _Records()

    def service(self, stem: str, config: dict | None = None):
        from service_framework import Service

        service = Service(service_path=str(LEGACY / "in_process" / f"{stem}.py"),
                          config=config,
                          addresses=str(self.addresses.addresses(
                              f"in_process/{stem}_addresses.json")),
                          console_loglevel="INFO")
        self.services.append(service)
        return service

    def __enter__(self) -> "in_process":
        logging.getLogger("service_framework").addHandler(self.records)
        return self

    def __exit__(self, kind, error, traceback) -> bool:
        try:
            for service in reversed(self.services):
                service.stop_service()
        finally:
            logging.getLogger("service_framework").removeHandler(self.records)
        if error is None or not isinstance(error, Exception):
            return False
        tail = self.records.lines[-TAIL_LINES:]
        raise AssertionError("\n".join([
            f"scenario {self.name!r} (in-process Service pair): {type(error).__name__}: "
            f"{error}", f"--- framework log (last {len(tail)} records):",
            *(f"    | {line}" for line in tail)])) from error


def test_service_pair_in_process_requests_from_init_function(tmp_path):
    output = tmp_path / "values.txt"
    with in_process("counter: init_function requests", tmp_path) as pair:
        with pytest.warns(DeprecationWarning, match="0.0.12's spelling"):  # its get_logger
            replyer = pair.service("counter_replyer", {"required": {"start": 100}})
        client = pair.service("counter_client", {
            "required": {"num_req_to_send": 3, "output_path": str(output)},
            "optional": {"step": 5}})
        replyer.run_service()
        client.run_service()  # its init_function asks the replyer three times
        assert output.read_text().split() == ["105", "110", "115"]
        client.stop_service()
        replyer.stop_service()
        port = pair.addresses.port(8895)
        assert not port_is_listening(port), f"port {port} is still bound after stop_service()"


def test_service_pair_in_process_state_written_by_init_function(tmp_path):
    expected = {"mode": "live", "limits": {"EUR": 10, "GBP": 20}}
    with in_process("settings: init_function writes a state", tmp_path) as pair:
        producer = pair.service("settings_producer", {"mode": "live"})
        consumer = pair.service("settings_consumer")
        producer.run_service()  # its init_function: a snapshot, then a delta
        consumer.run_service()
        assert consumer.definition.module.AT_INIT == {"settings": {}}, \
            "the consumer's init_function did not run before its state synced"
        holds = {}

        def converged():
            holds["settings"] = dict(consumer.runtime.states["settings"])
            return holds["settings"] == expected
        try:
            wait_until(converged, 10, message="the consumer's settings state")
        except AssertionError as error:
            raise AssertionError(f"{error}; it holds {holds.get('settings')!r}, expected "
                                 f"{expected!r}") from None


# -- --check on each of them -------------------------------------------------------------------
CHECKS = {
    "reqrep-replyer": ("reqrep/replyer.py", "reqrep/replyer_addresses.json",
                       "reqrep/replyer_config.json", False, ()),
    "reqrep-requester": ("reqrep/requester.py", "reqrep/requester_addresses.json",
                         "reqrep/requester_config.json", True, ("num_req_to_send", "10")),
    "pubsub-publisher": ("pubsub/publisher.py", "pubsub/bind/publisher_addresses.json", None,
                         True, ("num_messages", "5")),
    "pubsub-subscriber": ("pubsub/subscriber.py", "pubsub/bind/subscriber_addresses.json",
                          None, False, ("output_path", "received.jsonl")),
    "pubsub-x_publisher": ("pubsub/x_publisher.py", "pubsub/binder/x_publisher_addresses.json",
                           None, True, ("num_messages", "5")),
    "pubsub-binder_subscriber": ("pubsub/binder_subscriber.py",
                                 "pubsub/binder/binder_subscriber_addresses.json", None, False,
                                 ("output_path", "received.jsonl")),
    "pubsub-bus_publisher": ("pubsub/bus_publisher.py",
                             "pubsub/bus/bus_publisher_addresses.json", None, True,
                             ("num_messages", "5")),
    "pubsub-bus_subscriber": ("pubsub/subscriber.py", "pubsub/bus/subscriber_addresses.json",
                              None, False, ("output_path", "received.jsonl")),
    **{f"state-{case}-{role}": (f"states/{service}.py",
                                f"states/{folder}/{service}_addresses.json", None,
                                role == "producer",
                                ("num_updates", "5") if role == "producer" else ())
       for case, (folder, producer, consumer, *_) in STATE_CASES.items()
       for role, service in (("producer", producer), ("consumer", consumer))},
    "external-converter": ("external/converter.py", "external/converter_addresses.json",
                           "external/converter_config.json", False, ()),
    "external-client": ("external/client.py", "external/client_addresses.json",
                        "external/client_config.json", True, ("amount", "40")),
    "in_process-counter_replyer": ("in_process/counter_replyer.py",
                                   "in_process/counter_replyer_addresses.json", None, False,
                                   ("start", "100")),
    "in_process-counter_client": ("in_process/counter_client.py",
                                  "in_process/counter_client_addresses.json", None, False,
                                  ("num_req_to_send", "3", "output_path", "values.txt")),
    "in_process-settings_producer": ("in_process/settings_producer.py",
                                     "in_process/settings_producer_addresses.json", None,
                                     False, ("mode", "live")),
    "in_process-settings_consumer": ("in_process/settings_consumer.py",
                                     "in_process/settings_consumer_addresses.json", None,
                                     False, ()),
}


def _model_names(service: str) -> list[str]:
    """The connection and state names a legacy module declares (read from its source)."""
    source = (LEGACY / service).read_text()
    names = []
    for block in ("connection_models", "state_models"):
        if f"\n{block} = " in source:
            body = source.split(f"\n{block} = ", 1)[1].split("\n}\n", 1)[0]
            names += re.findall(r"^        '(\w+)': \{$", body, re.M)
    return names


@pytest.mark.parametrize("name", list(CHECKS))
def test_check_accepts_each_legacy_service(name):
    """Run from tests/legacy with relative paths, as 0.0.12's README ran services."""
    service, addresses, config, main, extras = CHECKS[name]
    args = ["-s", f"./{service}", "-a", f"./{addresses}"]
    if config:
        args += ["-c", f"./{config}"]
    if main:
        args.append("-m")
    args += ["--check", *extras]
    result = subprocess.run(cli_command(*args), cwd=LEGACY, capture_output=True, text=True,
                            timeout=20, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    report = (f"--check of {name}: service_framework {' '.join(args)}\n"
              f"exit status {result.returncode}\nstdout:\n{result.stdout}\n"
              f"stderr:\n{result.stderr}")
    assert result.returncode == 0, report
    assert ": OK" in result.stdout, report
    for declared in _model_names(service):
        assert re.search(rf"\b{declared}\b", result.stdout), f"{declared} not summarized\n" \
                                                           f"{report}"
