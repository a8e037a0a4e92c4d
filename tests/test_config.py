"""Config files, command-line extras, conversion and the layering order."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Literal, Optional

import pytest

from service_framework.config import (
    build_config,
    convert_value,
    flatten_sections,
    load_config_file,
    parse_extras,
)
from service_framework.errors import ConfigError, ModelError

MODEL = {
    "required": {"port": int, "name": str},
    "optional": {"ratio": float, "price": Decimal, "debug": bool, "levels": [int]},
}


def write(tmp_path, text, name="config.json"):
    path = tmp_path / name
    path.write_text(text)
    return path


# --- load_config_file / flatten_sections ------------------------------------------------------


def test_load_flat_file(tmp_path):
    path = write(tmp_path, json.dumps({"port": 1, "name": "x"}))
    assert load_config_file(path) == {"port": 1, "name": "x"}
    assert load_config_file(str(path)) == {"port": 1, "name": "x"}


def test_load_sectioned_file_is_flattened(tmp_path):
    path = write(tmp_path, json.dumps({"required": {"port": 1}, "optional": {"debug": True}}))
    assert load_config_file(path) == {"port": 1, "debug": True}


def test_load_missing_file_names_it(tmp_path):
    with pytest.raises(ConfigError, match="nope.json"):
        load_config_file(tmp_path / "nope.json")


def test_load_bad_json_names_file(tmp_path):
    path = write(tmp_path, "{not json", name="broken.json")
    with pytest.raises(ConfigError, match="broken.json.*invalid JSON"):
        load_config_file(path)


def test_load_non_object_names_file(tmp_path):
    path = write(tmp_path, "[1, 2]", name="list.json")
    with pytest.raises(ConfigError, match="list.json.*expected a JSON object, got list"):
        load_config_file(path)


def test_flatten_sections_variants():
    assert flatten_sections({"a": 1}) == {"a": 1}
    assert flatten_sections({"required": {"a": 1}, "optional": {"b": 2}}) == {"a": 1, "b": 2}
    assert flatten_sections({"required": {"a": 1}}) == {"a": 1}
    assert flatten_sections({"required": {"a": 1}, "c": 3}) == {"a": 1, "c": 3}


def test_flatten_sections_returns_a_new_dict():
    original = {"a": 1}
    flat = flatten_sections(original)
    flat["b"] = 2
    assert original == {"a": 1}


def test_flatten_sections_duplicate_key_is_an_error():
    with pytest.raises(ConfigError, match="'a'"):
        flatten_sections({"required": {"a": 1}, "optional": {"a": 2}})


def test_flatten_sections_not_a_mapping():
    with pytest.raises(ConfigError):
        flatten_sections([("a", 1)])


# --- parse_extras ------------------------------------------------------------------------------


def test_parse_extras_forms():
    tokens = ["--a", "1", "--b=2", "--flag"]
    assert parse_extras(tokens) == {"a": "1", "b": "2", "flag": "true"}


def test_parse_extras_flag_followed_by_key():
    assert parse_extras(["--flag", "--a", "1"]) == {"flag": "true", "a": "1"}


def test_parse_extras_negative_number_and_equals_in_value():
    assert parse_extras(["--offset", "-5", "--expr=a=b"]) == {"offset": "-5", "expr": "a=b"}


def test_parse_extras_empty_value():
    assert parse_extras(["--name="]) == {"name": ""}


def test_parse_extras_later_wins():
    assert parse_extras(["--a", "1", "--a", "2"]) == {"a": "2"}


@pytest.mark.parametrize("tokens", [["stray"], ["--a", "1", "2"], ["-x"], ["--"], ["--=1"]])
def test_parse_extras_rejects_stray_tokens(tokens):
    with pytest.raises(ConfigError):
        parse_extras(tokens)


# --- convert_value ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "form", "expected"),
    [
        ("5", int, 5),
        ("-5", int, -5),
        ("2.5", float, 2.5),
        ("3", float, 3.0),
        ("1.10", Decimal, Decimal("1.10")),
        ("hello", str, "hello"),
        ("true", bool, True),
        ("TRUE", bool, True),
        ("Yes", bool, True),
        ("1", bool, True),
        ("false", bool, False),
        ("No", bool, False),
        ("0", bool, False),
        ("2030-01-02T03:04:05+00:00", datetime,
         datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2030-01-02", date, date(2030, 1, 2)),
        ("[1, 2, 3]", [int], [1, 2, 3]),
        ("[1, 2]", list[int], [1, 2]),
        ('{"a": 1}', dict, {"a": 1}),
        ('{"a": 1.5}', dict, {"a": 1.5}),
        ('{"a": 1}', {str: int}, {"a": 1}),
        ('{"1.5": "2", "3": 4}', {Decimal: Decimal}, {Decimal("1.5"): Decimal(2),
                                                       Decimal(3): Decimal(4)}),
        ('{"1": "a"}', dict[int, str], {1: "a"}),
        ('[1, "a"]', (int, str), (1, "a")),
        ("[1, 2, 2]", {int}, {1, 2}),
        ("[0.1, 2]", [Decimal], [Decimal("0.1"), Decimal(2)]),
        ('{"a": [0.5]}', {str: [float]}, {"a": [0.5]}),
        ("7", Optional[int], 7),  # noqa: UP045
        ("none", Optional[int], None),  # noqa: UP045
        ("NULL", int | None, None),
        ('{"a": 1}', Optional[dict], {"a": 1}),  # noqa: UP045
        ("null", Optional[dict], None),  # noqa: UP045
        ("[1]", Optional[list], [1]),  # noqa: UP045
        ("sell", Literal["buy", "sell"], "sell"),
        ("5", int | str, 5),
        ("abc", int | str, "abc"),
        ("anything", Any, "anything"),
    ],
)
def test_convert_value(raw, form, expected):
    value = convert_value("k", raw, form)
    assert value == expected
    assert type(value) is type(expected)


def test_convert_value_dict_keys_get_their_type():
    value = convert_value("book", '{"1.5": 2}', {Decimal: Decimal})
    assert all(type(k) is Decimal and type(v) is Decimal for k, v in value.items())


@pytest.mark.parametrize(
    ("raw", "form", "shown"),
    [
        ("abc", int, "int"),
        ("1.5", int, "int"),
        ("True", int, "int"),
        ("abc", float, "float"),
        ("abc", Decimal, "Decimal"),
        ("maybe", bool, "bool"),
        ("2030-13-01", date, "date"),
        ("yesterday", datetime, "datetime"),
        ("[1, 'a'", [int], "list[int]"),
        ('[1, "a"]', [int], "list[int]"),
        ('{"a": "b"}', {str: int}, "dict[str, int]"),
        ("[1, 2]", dict, "dict"),
        ("x", Optional[int], "int | None"),  # noqa: UP045
        ("hold", Literal["buy", "sell"], "Literal['buy', 'sell']"),
    ],
)
def test_convert_value_failures(raw, form, shown):
    with pytest.raises(ConfigError) as info:
        convert_value("port", raw, form)
    message = str(info.value)
    assert message.startswith(f"config key 'port': cannot convert {raw!r} to {shown}")


def test_convert_value_message_exact():
    with pytest.raises(ConfigError) as info:
        convert_value("port", "abc", int)
    assert str(info.value) == "config key 'port': cannot convert 'abc' to int"


def test_convert_value_bad_form_is_model_error():
    with pytest.raises(ModelError):
        convert_value("k", "1", [int, str])


# --- build_config ------------------------------------------------------------------------------


def test_build_config_without_model_passes_through():
    config = build_config(None, file_config={"a": 1}, extras={"b": "2"})
    assert config == {"a": 1, "b": "2"}  # extras stay strings without a model


def test_build_config_none_everything():
    assert build_config(None) == {}


def test_build_config_converts_extras_by_model():
    config = build_config(MODEL, extras={"port": "5555", "name": "svc", "ratio": "0.5",
                                         "price": "1.25", "debug": "yes", "levels": "[1, 2]"})
    assert config == {"port": 5555, "name": "svc", "ratio": 0.5, "price": Decimal("1.25"),
                      "debug": True, "levels": [1, 2]}


def test_build_config_extras_override_file():  # the 0.0.12 bug: the file won
    config = build_config(MODEL, file_config={"port": 1, "name": "file"},
                          extras={"port": "2"})
    assert config == {"port": 2, "name": "file"}


def test_layering_order_file_extras_overrides_setup():
    seen = {}

    def setup_config(config):
        seen.update(config)
        return {"optional": {"debug": True}}

    config = build_config(
        MODEL,
        file_config={"required": {"port": 1, "name": "file"}, "optional": {"ratio": 0.1}},
        extras={"name": "extra", "ratio": "0.2"},
        overrides={"ratio": 0.3},
        setup_config=setup_config,
    )
    assert seen == {"port": 1, "name": "extra", "ratio": 0.3}
    assert config == {"port": 1, "name": "extra", "ratio": 0.3, "debug": True}


def test_setup_config_overwrites_keys_flat():
    config = build_config(MODEL, file_config={"port": 1, "name": "a"},
                          setup_config=lambda c: {"port": c["port"] + 1})
    assert config["port"] == 2


def test_setup_config_may_supply_required_keys():
    config = build_config(MODEL, file_config={"name": "a"},
                          setup_config=lambda c: {"required": {"port": 9}})
    assert config == {"name": "a", "port": 9}


def test_setup_config_returning_none_keeps_config():
    assert build_config(None, file_config={"a": 1}, setup_config=lambda c: None) == {"a": 1}


def test_setup_config_result_is_validated():
    with pytest.raises(ConfigError, match="'port'.*expected int.*got str"):
        build_config(MODEL, file_config={"port": 1, "name": "a"},
                     setup_config=lambda c: {"port": "oops"})


def test_unknown_extra_with_model_is_an_error():
    with pytest.raises(ConfigError, match="'colour'"):
        build_config(MODEL, file_config={"port": 1, "name": "a"}, extras={"colour": "red"})


def test_unknown_file_key_with_model_is_an_error():
    with pytest.raises(ConfigError, match="unknown key 'colour'"):
        build_config(MODEL, file_config={"port": 1, "name": "a", "colour": "red"})


def test_missing_required_key_is_config_error():
    with pytest.raises(ConfigError) as info:
        build_config(MODEL, file_config={"name": "a"})
    assert "config" in str(info.value) and "'port'" in str(info.value)


def test_wrong_type_in_file_is_config_error_keeping_message():
    with pytest.raises(ConfigError) as info:
        build_config(MODEL, file_config={"port": "5555", "name": "a"})
    message = str(info.value)
    assert message.startswith("config: key 'port' expected int, got str")


def test_bad_extra_is_config_error_naming_key():
    with pytest.raises(ConfigError, match="config key 'port': cannot convert 'abc' to int"):
        build_config(MODEL, extras={"port": "abc", "name": "a"})


def test_file_values_coerced_to_types_json_cannot_express():
    model = {"required": {"price": Decimal, "when": datetime, "pair": (int, str),
                          "book": {Decimal: Decimal}}}
    config = build_config(model, file_config={
        "price": 1.1, "when": "2030-01-01T00:00:00+00:00", "pair": [1, "a"],
        "book": {"1.5": "2"}})
    assert config == {"price": Decimal("1.1"),
                      "when": datetime(2030, 1, 1, tzinfo=UTC),
                      "pair": (1, "a"), "book": {Decimal("1.5"): Decimal(2)}}


def test_overrides_are_taken_as_typed():
    config = build_config(MODEL, file_config={"port": 1, "name": "a"},
                          overrides={"required": {"port": 7}})
    assert config["port"] == 7
    with pytest.raises(ConfigError):
        build_config(MODEL, overrides={"port": "7", "name": "a"})


def test_model_with_only_one_section():
    assert build_config({"optional": {"a": int}}) == {}
    assert build_config({"required": {"a": int}}, extras={"a": "1"}) == {"a": 1}


def test_bad_config_model():
    with pytest.raises(ConfigError, match="'requried'"):
        build_config({"requried": {"a": int}})
    with pytest.raises(ModelError):
        build_config({"required": {"a": "int"}})


def test_bool_extra_flag_without_value():
    extras = parse_extras(["--debug"])
    config = build_config(MODEL, file_config={"port": 1, "name": "a"}, extras=extras)
    assert config["debug"] is True
