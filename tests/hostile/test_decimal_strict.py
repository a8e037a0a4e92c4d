"""Decimal input is finite and strict (issue 11, items 12 and 13).

A `Decimal` in a model means a finite decimal whose adjusted exponent is within the default
context's range, in arguments (also nested in containers and unions), config files and
`--key=value` extras; extras are parsed strictly (no underscores, no spaces, no NaN).
`AnyDecimal` is the documented opt-in for NaN, sNaN and Infinity. Over a real socket, a
request carrying such a value gets an error reply and the service goes on.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
import zmq
from helpers import EXAMPLES, endpoint, free_port, make_module, run_cli
from hypothesis import given, settings
from hypothesis import strategies as st

from service_framework import AnyDecimal, ArgumentError, ConfigError, Service
from service_framework.config import convert_value
from service_framework.wire import codec
from service_framework.wire.envelope import decode_reply, encode_request
from service_framework.wire.validation import ArgsChecker, is_finite_decimal, parse_decimal

NON_FINITE = ["NaN", "-NaN", "sNaN", "Infinity", "-Infinity", "nan", "inf"]
OUT_OF_RANGE = ["1E+999999999999999999", "1E-999999999999999999", "0E+1000000", "-5E+1000000"]
NOT_LITERALS = ["1_000", " 1 ", "1 ", "", "1.2.3", "0x10", "١٢", "+", "1e", "e3"]


SHAPES = {  # a model form, and where the bad value goes in an argument of that form
    "plain": (Decimal, lambda v: v),
    "optional": (Decimal | None, lambda v: v),
    "list item": (list[Decimal], lambda v: [Decimal(1), v]),
    "dict value": ({Decimal: Decimal}, lambda v: {Decimal(1): v}),
    "str-keyed value": ({str: Decimal}, lambda v: {"k": v}),
    "tuple item": (tuple[int, Decimal], lambda v: (1, v)),
}


@pytest.mark.parametrize("text", NON_FINITE + OUT_OF_RANGE)
@pytest.mark.parametrize("shape", SHAPES)
def test_a_decimal_model_refuses_non_finite_and_huge_values_wherever_it_sits(shape, text):
    form, place = SHAPES[shape]
    shaped = place(Decimal(text))
    checker = ArgsChecker("svc", {"a": form}, None)
    with pytest.raises(ArgumentError, match="key 'a' expected"):
        checker.check({"a": shaped})
    if isinstance(form, dict):  # a delta (merge patch) is held to the same rule
        with pytest.raises(ArgumentError):
            checker.check({"a": shaped}, partial=True)


def test_the_error_says_why_a_decimal_is_refused():
    with pytest.raises(ArgumentError, match=r"must be finite with an exponent in -999999\.\."):
        ArgsChecker("svc", {"fee": Decimal}, None).check({"fee": Decimal("sNaN")})


@pytest.mark.parametrize("text", ["0", "-12.50", "1E+3", "123456789012345678901234567890.5",
                                  "1E+999999", "1E-999999", "-0"])
def test_finite_decimals_in_range_pass(text):
    ArgsChecker("svc", {"a": Decimal, "b": [Decimal]}, None).check(
        {"a": Decimal(text), "b": [Decimal(text)]})


@pytest.mark.parametrize("text", NON_FINITE)
def test_any_decimal_is_the_opt_in_for_non_finite_values(text):
    checker = ArgsChecker("svc", {"a": AnyDecimal, "b": list[AnyDecimal]}, None)
    checker.check({"a": Decimal(text), "b": [Decimal(text)]})
    with pytest.raises(ArgumentError, match="expected AnyDecimal"):
        checker.check({"a": Decimal("1E+999999999999999999"), "b": []})
    with pytest.raises(ArgumentError):
        checker.check({"a": 1.5, "b": []})


# -- strict literals: config extras and files --------------------------------------------------
@pytest.mark.parametrize("text", NOT_LITERALS + NON_FINITE + OUT_OF_RANGE)
def test_extras_parse_decimals_strictly(text):
    with pytest.raises(ConfigError, match="config key 'fee': cannot convert"):
        convert_value("fee", text, Decimal)


@pytest.mark.parametrize("text", ["0.5", "-1", "1e-3", ".25", "+7"])
def test_extras_take_decimal_literals(text):
    assert convert_value("fee", text, Decimal) == Decimal(text)


def test_extras_take_non_finite_only_for_any_decimal():
    assert convert_value("fee", "Infinity", AnyDecimal) == Decimal("Infinity")
    assert convert_value("fee", "NaN", AnyDecimal).is_nan()
    with pytest.raises(ConfigError):
        convert_value("fee", "1_000", AnyDecimal)


@pytest.mark.parametrize("value", ["NaN", "1_000", " 1 ", "Infinity"])
def test_config_files_hold_decimals_to_the_same_rule(tmp_path, value):
    service = tmp_path / "svc.py"
    service.write_text(
        "from decimal import Decimal\n"
        "config_model = {'required': {'fee': Decimal}}\n"
        "connection_models = {}\n"
        "def main(to_send, config):\n    pass\n")
    config = tmp_path / "config.json"
    config.write_text('{"fee": "%s"}' % value)
    result = run_cli("-s", str(service), "-c", str(config), "-m", "--check")
    assert result.returncode == 2, result.stderr
    assert "fee" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("fee", ["NaN", "Infinity", "sNaN", "1_000", " 1 ",
                                 "1E+999999999999999999"])
def test_the_external_target_example_refuses_a_bad_fee_at_load(fee):
    example = EXAMPLES / "external_target"
    result = run_cli("-s", "service.py", "-a", "addresses.json", "--check", f"--fee={fee}",
                     cwd=example)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "config key 'fee'" in lines[0], result.stderr


def test_the_external_target_example_takes_a_finite_fee():
    result = run_cli("-s", "service.py", "-a", "addresses.json", "--check", "--fee=0.5",
                     cwd=EXAMPLES / "external_target")
    assert result.returncode == 0, result.stderr


# -- over a real socket: an error reply, and the service goes on -------------------------------
def _convert(args, to_send, states, config):
    return {"amount": (args["amount"] * 2).quantize(Decimal("0.01"))}


@pytest.fixture
def replyer():
    port = free_port()
    module = make_module("decimal_replyer", connection_models={"in": {"convert": {
        "connection_type": "replyer",
        "required_creation_arguments": {"on_new_request": _convert},
        "required_arguments": {"amount": Decimal},
        "required_return_arguments": {"amount": Decimal},
    }}})
    service = Service(service_module=module, console_loglevel="CRITICAL",
                      addresses={"connections": {"in": {"convert": {"replyer": endpoint(port)}}}})
    service.run_service()
    socket = zmq.Context.instance().socket(zmq.DEALER)
    socket.linger = 0
    socket.connect(f"tcp://{endpoint(port)}")
    yield socket
    socket.close()
    service.stop_service()


def _ask(socket, amount: Decimal, rid: str):
    socket.send(encode_request("wf", {"amount": amount}, rid,
                               max_bytes=codec.DEFAULT_MAX_MESSAGE_BYTES))
    assert socket.poll(5000), "no answer"
    return decode_reply(socket.recv_multipart()[-1], max_bytes=codec.DEFAULT_MAX_MESSAGE_BYTES)


@pytest.mark.parametrize("text", ["sNaN", "NaN", "-Infinity", "1E+999999999999999999"])
def test_a_request_with_a_bad_decimal_gets_an_error_reply_and_the_service_goes_on(replyer, text):
    reply = _ask(replyer, Decimal(text), "bad")
    assert reply.rid == "bad" and reply.error is not None
    assert "finite" in str(reply.error)
    good = _ask(replyer, Decimal("1.25"), "good")
    assert (good.error, good.return_args) == (None, {"amount": Decimal("2.50")})


# -- property: the codec and the rule agree ----------------------------------------------------
@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(st.decimals(allow_nan=True, allow_infinity=True))
def test_every_in_range_decimal_round_trips_and_passes_and_no_other_does(value):
    checker = ArgsChecker("svc", {"a": Decimal}, None)
    decoded = codec.unpack(codec.pack({"a": value}))["a"]
    assert str(decoded) == str(value)  # exact: the exponent is kept
    if value.is_finite() and -999_999 <= value.adjusted() <= 999_999:
        checker.check({"a": decoded})
        assert parse_decimal(str(value)) == value or value.is_zero()
    else:
        assert not is_finite_decimal(decoded)
        with pytest.raises(ArgumentError):
            checker.check({"a": decoded})
