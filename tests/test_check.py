"""`--check` catches the mistakes people make (issue 13, part 2): each one is a load error
naming the file's place, from the CLI (exit 2, one line) and in-process."""

from __future__ import annotations

import signal
import textwrap

import pytest
from helpers import EXAMPLES, catches_signal, finish, run_cli, start_cli, wait_until

from service_framework import ArgumentError
from service_framework.errors import ModelError
from service_framework.loader import load_service
from service_framework.wire.validation import ArgsChecker

REPLYER = """
def {name}({params}):
    return {{}}

connection_models = {{"in": {{"orders": {{
    "connection_type": "replyer",
    "required_creation_arguments": {{"{key}": {name}}},
    "optional_creation_arguments": {extra},
}}}}}}
"""


def service_file(tmp_path, text: str):
    path = tmp_path / "svc.py"
    path.write_text(textwrap.dedent(text))
    return path


ADDRESSES = {"connections": {"in": {"orders": {"replyer": "127.0.0.1:1"}}}}


def check(path) -> str:
    result = run_cli("-s", path, "--check")
    assert result.returncode == 2, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def replyer(tmp_path, *, params="args, to_send, states, config", key="on_new_request",
            extra="{}", name="on_order"):
    return service_file(tmp_path, REPLYER.format(name=name, params=params, key=key,
                                                 extra=extra))


def test_a_handler_with_the_wrong_parameters_fails_the_check(tmp_path):
    line = check(replyer(tmp_path, params="args, to_send, config"))
    assert "connection_models.in.orders handler" in line
    assert "handler(args, to_send, states, config)" in line and "on_order" in line
    with pytest.raises(ModelError, match="handler"):
        load_service(replyer(tmp_path, params="args"), addresses=ADDRESSES)


@pytest.mark.parametrize("params", ["args, to_send, states, config", "*args",
                                    "args, to_send, states, config, extra=None"])
def test_handlers_that_can_be_called_so_pass(tmp_path, params):
    assert load_service(replyer(tmp_path, params=params), addresses=ADDRESSES).connections


def test_a_creation_argument_typo_is_an_error_with_the_nearest_name(tmp_path):
    path = service_file(tmp_path, """
        connection_models = {"out": {"risk": {
            "connection_type": "requester",
            "optional_creation_arguments": {"timout_s": 0.5},
        }}}
    """)
    line = check(path)
    assert "unknown creation argument 'timout_s'" in line and "did you mean 'timeout_s'" in line
    assert "connection_models.out.risk" in line


def test_a_callable_under_an_undocumented_key_is_not_the_handler(tmp_path):
    line = check(replyer(tmp_path, key="on_request"))
    assert "unknown creation argument 'on_request'" in line
    assert "did you mean 'on_new_request'" in line


def test_a_0012_style_handler_key_still_works(tmp_path):
    definition = load_service(replyer(tmp_path, key="on_new_order"), addresses=ADDRESSES)
    assert definition.connections[("in", "orders")].handler.__name__ == "on_order"


def test_signal_handlers_and_init_function_are_checked(tmp_path):
    path = service_file(tmp_path, """
        def init_function(to_send, config):
            pass

        def main(to_send, config):
            pass
    """)
    assert "init_function(to_send, states, config)" in check(path)
    path.write_text("def sigterm_handler(signum, frame):\n    pass\n")
    assert "sigterm_handler(signum, frame, to_send, states, config)" in check(path)
    path.write_text("def main(to_send):\n    pass\n")
    assert "main: expected main(to_send, config)" in check(path)


@pytest.mark.parametrize("signature, takes_states", [
    ("to_send, config", False),
    ("to_send, states, config", True),
    ("to_send, config, verbose=False", False),  # found by review: it was given states
    ("to_send, config, a=1, b=2", False),  # it was refused: four parameters
    ("to_send, states, config=None", True),
    ("*args", True),
])
def test_what_main_is_given_follows_what_it_can_be_called_with(tmp_path, signature,
                                                                 takes_states):
    from service_framework.loader import main_takes_states

    namespace: dict = {}
    exec(f"def main({signature}):\n    return None", namespace)  # noqa: S102
    assert main_takes_states(namespace["main"]) is takes_states
    path = service_file(tmp_path, f"def main({signature}):\n    return None\n")
    assert load_service(path, main_mode=True).main_takes_states is takes_states


@pytest.mark.parametrize("model, args", [
    ({"name": str}, {"name": None}), ({"items": list[int]}, {"items": None}),
    ({"price": int}, {"price": "1"})])
def test_a_wrong_value_is_named_once(model, args):
    with pytest.raises(ArgumentError) as raised:
        ArgsChecker("svc", model, None).check(args)
    message = str(raised.value)
    assert message.count(repr(next(iter(args.values())))) <= 1, message
    assert "expected " in message and "got " in message


def test_a_main_without_a_signature_is_given_everything():
    from service_framework.loader import main_takes_states

    assert main_takes_states(max) is True


def test_main_without_m_is_said_at_check_and_at_start(tmp_path):
    path = service_file(tmp_path, "def main(to_send, config):\n    pass\n")
    result = run_cli("-s", path, "--check")
    assert result.returncode == 0 and "defines main() but runs without -m" in result.stdout
    assert "without -m" not in run_cli("-s", path, "-m", "--check").stdout
    ran = run_cli("-s", path, "-m", "-cl", "WARNING")  # main returns: the service stops
    assert ran.returncode == 0 and "without -m" not in ran.stderr, ran.stderr
    plain = start_cli("-s", path, "-cl", "WARNING")  # serves until stopped
    try:
        wait_until(lambda: plain.poll() is None and catches_signal(plain.pid, signal.SIGTERM),
                   timeout=15, message="the service running")
    finally:
        _, _, err = finish(plain, send=signal.SIGTERM)
    assert "defines main() but runs without -m" in err


def test_the_examples_still_pass_the_check():
    for service, addresses, main_mode in [("echo/replyer.py", "echo/addresses.json", False),
                                          ("echo/requester.py", "echo/addresses.json", True),
                                          ("pubsub/subscriber.py", "pubsub/addresses.json",
                                           False)]:
        flags = ["-m"] if main_mode else []
        result = run_cli("-s", EXAMPLES / service, "-a", EXAMPLES / addresses, *flags,
                         "--check")
        assert result.returncode == 0, result.stderr


def test_a_none_value_is_not_named_twice():
    with pytest.raises(ArgumentError) as raised:
        ArgsChecker("svc", {"name": str}, None).check({"name": None})
    message = str(raised.value)
    assert "expected str, got None" in message and "None None" not in message
