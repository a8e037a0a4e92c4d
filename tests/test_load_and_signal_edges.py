"""Edges found in review: load errors that must be caught at load, CLI flags that must
match exactly, and signals in main mode while `main` holds a connection."""

import json
import signal
import types

import pytest
from helpers import (
    TEST_SERVICES,
    catches_signal,
    finish,
    free_port,
    run_cli,
    start_cli,
    wait_until,
)

from service_framework import ArgumentError, ConfigError, ModelError, Service
from service_framework.transport.memory import MemoryBus


def service_file(tmp_path, text):
    path = tmp_path / "svc.py"
    path.write_text(text)
    return path


def test_a_sigint_while_main_waits_on_a_request_runs_the_handler_then_exits_0(tmp_path):
    addresses = tmp_path / "addresses.json"
    addresses.write_text(json.dumps({"connections": {"out": {"nobody": {
        "requester": f"127.0.0.1:{free_port()}"}}}}))
    process = start_cli("-s", TEST_SERVICES / "main_requesting_until_signal.py",
                        "-a", addresses, "-m", "--marker_dir", tmp_path)
    wait_until(lambda: (tmp_path / "main_started").exists()
               and catches_signal(process.pid, signal.SIGINT), 10, message="main started")
    code, out, err = finish(process, 10, send=signal.SIGINT)
    assert code == 0, err
    assert (tmp_path / "SIGINT").read_text() == "RequestTimeout"


def test_bad_creation_arguments_are_load_errors_that_check_catches(tmp_path):
    path = service_file(tmp_path, """
connection_models = {"out": {"prices": {"connection_type": "requester",
                                        "optional_creation_arguments": {"timeout_s": -1}}}}
""")
    result = run_cli("--check", "-s", path, "-a", "/dev/null")
    with pytest.raises(ModelError, match=r"connection_models.out.prices.timeout_s"):
        Service(service_path=path)
    assert result.returncode == 2


def test_a_bad_state_heartbeat_is_a_load_error():
    module = types.ModuleType("bad_heartbeat")
    module.state_models = {"out": {"s": {"state_type": "full_update_out",
                                         "optional_creation_arguments": {
                                             "heartbeat_s": float("nan")}}}}
    with pytest.raises(ModelError, match="heartbeat_s"):
        Service(service_module=module, transport="memory")


def test_an_unknown_log_level_is_a_readable_load_error():
    result = run_cli("-s", TEST_SERVICES / "plain_service.py", "-cl", "LOUD", "--check")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "LOUD" in result.stderr


def test_long_spellings_of_framework_flags_are_config_extras(tmp_path):
    path = service_file(tmp_path, 'config_model = {"optional": {"service": str}}\n')
    result = run_cli("--check", "-s", path, "--service", "downstream")
    assert result.returncode == 0, result.stderr
    assert "service" in result.stdout


def test_a_config_that_breaks_its_model_is_an_argument_error_and_a_config_error():
    module = types.ModuleType("typed_config")
    module.config_model = {"required": {"port": int}}
    with pytest.raises(ArgumentError, match="port") as error:
        Service(service_module=module, config={"port": "x"}, transport="memory")
    assert isinstance(error.value, ConfigError)


def test_setup_config_raising_is_a_load_error_naming_the_hook():
    module = types.ModuleType("failing_setup")

    def setup_config(config):
        raise KeyError("region")

    module.setup_config = setup_config
    with pytest.raises(ConfigError, match="setup_config raised KeyError"):
        Service(service_module=module, transport="memory")


def test_main_mode_on_the_memory_bus_runs_main_and_stops():
    module = types.ModuleType("memory_main")
    module.state_models = {"out": {"s": {"state_type": "full_update_out",
                                         "optional_arguments": {"n": int}}}}
    module.main = lambda to_send, config: to_send("state", "s", {"n": 1})
    bus = MemoryBus()
    service = Service(service_module=module, transport=bus, addresses={"states": {"out": {
        "s": {"publisher": "127.0.0.1:1", "replyer": "127.0.0.1:2"}}}})
    service.run_service_as_main()
    assert service.wait_stopped(0) and service.main_error is None
    bus.advance(5)  # nothing is left running: time moves and the call returns
    assert bus.open_sockets() == []


def test_stopping_twice_is_harmless():
    module = types.ModuleType("idle")
    service = Service(service_module=module)
    service.run_service()
    service.stop_service()
    service.stop_service()
    with service:
        pass
    assert service.wait_stopped(0)
