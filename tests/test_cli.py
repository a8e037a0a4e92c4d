"""The command line: the examples end to end, --check, config extras, logging, paths."""

from __future__ import annotations

import json
import re
import signal
import socket
import textwrap

import pytest
from helpers import (
    EXAMPLES,
    REPO,
    addresses_ports,
    endpoint,
    finish,
    free_port,
    port_is_listening,
    rewrite_addresses,
    run_cli,
    start_cli,
    wait_until,
)


def wait_listening(process, port: int) -> None:
    try:
        wait_until(lambda: port_is_listening(port) or process.poll() is not None, 10,
                   message=f"a service to listen on port {port}")
        assert process.poll() is None, finish(process)
    except BaseException:
        process.kill()
        raise


# -- the examples, end to end --------------------------------------------------------------
@pytest.mark.parametrize("console_script", [False, True], ids=["python-m", "console-script"])
def test_echo_example_end_to_end(tmp_path, console_script):
    addresses = rewrite_addresses(EXAMPLES / "echo" / "addresses.json", tmp_path)
    replyer = start_cli("-s", "examples/echo/replyer.py", "-a", addresses,
                        "-c", "examples/echo/replyer_config.json", "-cl", "WARNING",
                        console_script=console_script)
    wait_listening(replyer, addresses_ports(addresses)[0])
    try:
        result = run_cli("-s", "examples/echo/requester.py", "-a", addresses,
                         "-c", "examples/echo/requester_config.json", "-m", "-cl", "WARNING",
                         console_script=console_script)
    finally:
        returncode, _, err = finish(replyer, send=signal.SIGTERM)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "reply 0: echo: hello 0 (count=1, amount=0.00)",
        "reply 1: echo: hello 1 (count=2, amount=1.50)",
        "reply 2: echo: hello 2 (count=3, amount=3.00)",
    ]
    assert returncode == 0, err


@pytest.mark.parametrize("publisher_first", [False, True],
                         ids=["subscriber-first", "publisher-first"])
def test_pubsub_example_end_to_end(tmp_path, publisher_first):
    addresses = rewrite_addresses(EXAMPLES / "pubsub" / "addresses.json", tmp_path)
    publisher_args = ("-s", "examples/pubsub/publisher.py", "-a", addresses,
                      "-c", "examples/pubsub/publisher_config.json", "-m", "-cl", "WARNING")
    subscriber_args = ("-s", "examples/pubsub/subscriber.py", "-a", addresses,
                       "-c", "examples/pubsub/subscriber_config.json", "-cl", "WARNING")
    if publisher_first:
        publisher = start_cli(*publisher_args)
        subscriber = start_cli(*subscriber_args)
    else:
        subscriber = start_cli(*subscriber_args)
        publisher = start_cli(*publisher_args)
    pub_code, pub_out, pub_err = finish(publisher, 15)
    sub_code, sub_out, sub_err = finish(subscriber, 15)  # stops itself after 5 ticks
    assert pub_code == 0, pub_err
    assert sub_code == 0, sub_err
    ticks = [f"{n}: EURUSD 1.085{n} at 2030-01-01T00:00:0{n}+00:00" for n in range(1, 6)]
    assert pub_out.splitlines() == [f"published tick {tick}" for tick in ticks]
    assert sub_out.splitlines() == [
        *(f"tick {tick} (running count {n})" for n, tick in enumerate(ticks, 1)),
        "received 5 tick(s); stopping",
    ]


def test_external_target_example_end_to_end(tmp_path):
    addresses = rewrite_addresses(EXAMPLES / "external_target" / "addresses.json", tmp_path)
    folder = EXAMPLES / "external_target"
    # Another working directory: the sibling module rates.py must import all the same.
    service = start_cli("-s", folder / "service.py", "-a", addresses,
                        "-c", folder / "service_config.json", "-cl", "WARNING", cwd=tmp_path)
    wait_listening(service, addresses_ports(addresses)[0])
    try:
        result = run_cli("-s", "examples/external_target/client.py", "-a", addresses,
                         "-c", "examples/external_target/client_config.json", "-m",
                         "-cl", "WARNING")
    finally:
        returncode, _, err = finish(service, send=signal.SIGTERM)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "250.00 EUR = 270.57 USD (rate 1.0850, fee 0.68, as of 2030-01-01T00:00:00+00:00)"]
    assert returncode == 0, err


# -- help and --check ------------------------------------------------------------------------
def test_help_documents_every_flag():
    result = run_cli("-h")
    assert result.returncode == 0
    for flag in ("-s", "-a", "-c", "-m", "-cl", "-f", "-bc", "-l", "--record", "--replay",
                 "--check", "--keygen"):
        assert re.search(rf"(^|[\s,]){re.escape(flag)}([\s,=]|$)", result.stdout, re.M), flag
    assert "--KEY VALUE" in result.stdout


CHECKED_SERVICE = """
def on_new_request(args, to_send, states, config):
    return {}

config_model = {"optional": {"count": int}}
connection_models = {"in": {"echo": {
    "connection_type": "replyer",
    "required_creation_arguments": {"on_new_request": on_new_request},
    "required_arguments": {"text": str},
}}}
"""


def write_checked(tmp_path, source: str = CHECKED_SERVICE, *, with_address: bool = True,
                  port: int | None = None):
    service = tmp_path / "checked.py"
    service.write_text(source)
    addresses = tmp_path / "addresses.json"
    echo = {"replyer": endpoint(port or free_port())} if with_address else {}
    addresses.write_text(json.dumps({"connections": {"in": {"echo": echo}}}))
    return service, addresses


def test_check_accepts_a_good_service_without_binding(tmp_path):
    with socket.socket() as holder:  # --check would fail if it tried to bind this port
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        service, addresses = write_checked(tmp_path, port=holder.getsockname()[1])
        result = run_cli("-s", service, "-a", addresses, "--check", "--count", "2")
    assert result.returncode == 0, result.stderr
    assert "echo" in result.stdout and "replyer" in result.stdout


@pytest.mark.parametrize("change, extras, expected", [
    (("required_arguments", "required_argumnets"), (), "required_argumnets"),
    (('"connection_type": "replyer"', '"connection_type": "replier"'), (), "replier"),
    (('{"on_new_request": on_new_request}', "{}"), (), "handler"),
    (None, ("--count", "many"), "count"),
    (None, ("--count=1.5",), "count"),
    (None, ("--colour", "red"), "colour"),
    (None, ("-c", "{config}"), "size"),
    (None, ("-a", "{no_address}"), "connections.in.echo.replyer"),
], ids=["unknown-model-key", "unknown-connection-type", "missing-handler",
        "extra-wrong-type", "extra-wrong-type-equals", "extra-unknown-key",
        "config-file-unknown-key", "missing-address"])
def test_check_rejects_with_one_readable_line_and_exit_2(tmp_path, change, extras, expected):
    source = CHECKED_SERVICE if change is None else CHECKED_SERVICE.replace(*change)
    service, addresses = write_checked(tmp_path, source)
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"count": 1, "size": 3}))
    no_address = tmp_path / "no_address.json"
    no_address.write_text(json.dumps({"connections": {"in": {}}}))
    extras = [str(arg).format(config=config, no_address=no_address) for arg in extras]
    if "-a" not in extras:
        extras = ["-a", str(addresses), *extras]
    result = run_cli("-s", service, "--check", *extras)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert expected in lines[0]
    assert "Traceback" not in result.stderr
    assert "OK" not in result.stdout


# -- config extras, logging flags, service paths -------------------------------------------
CONFIG_PRINTER = """
import json

from decimal import Decimal

config_model = {"required": {"count": int},
                "optional": {"price": Decimal, "ratio": float, "verbose": bool, "quiet": bool,
                             "levels": [int], "limits": {str: int}, "name": str, "log": str}}


def main(to_send, config):
    print(json.dumps({key: [type(value).__name__, str(value)]
                      for key, value in sorted(config.items())}))
"""


def test_extras_are_converted_by_config_model_types_and_win_over_the_file(tmp_path):
    service = tmp_path / "printer.py"
    service.write_text(CONFIG_PRINTER)
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"required": {"count": 1}, "optional": {"name": "file"}}))
    result = run_cli("-s", service, "-c", config, "-m", "--count", "3", "--price=1.50",
                     "--ratio", "0.25", "--verbose", "yes", "--quiet=0", "--levels", "[1, 2]",
                     '--limits={"a": 1}', "--log", "x", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "count": ["int", "3"], "price": ["Decimal", "1.50"], "ratio": ["float", "0.25"],
        "verbose": ["bool", "True"], "quiet": ["bool", "False"],
        "levels": ["list", "[1, 2]"], "limits": ["dict", "{'a': 1}"],
        "name": ["str", "file"], "log": ["str", "x"]}
    assert not (tmp_path / "x").exists()  # --log is a config extra, never -l


def test_log_path_and_backup_count_create_the_log_file(tmp_path):
    service = tmp_path / "logging_main.py"
    service.write_text(textwrap.dedent("""
        from service_framework import get_logger

        def main(to_send, config):
            get_logger().info("hello from main")
    """))
    log_path = tmp_path / "logs" / "service.log"
    result = run_cli("-s", service, "-m", "-bc", "3", "-l", log_path, "-f", "INFO",
                     "-cl", "WARNING")
    assert result.returncode == 0, result.stderr
    assert "hello from main" in log_path.read_text()
    assert "hello from main" not in result.stderr  # the console stays at WARNING


def test_main_that_raises_exits_1(tmp_path):
    service = tmp_path / "crashing.py"
    service.write_text("def main(to_send, config):\n    raise RuntimeError('boom')\n")
    result = run_cli("-s", service, "-m", "-cl", "CRITICAL")
    assert result.returncode == 1


@pytest.fixture
def project(tmp_path):
    """proj/svc/pathsvc.py imports its sibling proj/svc/pathsvc_sibling.py."""
    folder = tmp_path / "proj" / "svc"
    folder.mkdir(parents=True)
    (tmp_path / "proj" / "other").mkdir()
    (folder / "pathsvc_sibling.py").write_text("VALUE = 'sibling imported'\n")
    (folder / "pathsvc.py").write_text(textwrap.dedent("""
        from pathsvc_sibling import VALUE

        def main(to_send, config):
            print(VALUE)
    """))
    return tmp_path / "proj"


@pytest.mark.parametrize("how", ["relative", "parent", "absolute"])
def test_service_path_forms_and_sibling_imports(project, how):
    cwd, path = {
        "relative": (project, "svc/pathsvc.py"),
        "parent": (project / "other", "../svc/pathsvc.py"),
        "absolute": (REPO, str(project / "svc" / "pathsvc.py")),
    }[how]
    result = run_cli("-s", path, "-m", "-cl", "WARNING", cwd=cwd)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "sibling imported"
