"""Address files, endpoint normalization and socket lookups."""

from __future__ import annotations

import json

import pytest

from service_framework.addresses import endpoints, load_addresses, normalize_endpoint
from service_framework.errors import ConfigError

ADDRESSES = {
    "connections": {
        "in": {"echo": {"replyer": "127.0.0.1:5555"}},
        "out": {"ask": {"requester": ["127.0.0.1:5555", "tcp://10.0.0.2:5556"]},
                "one": {"requester": "localhost:6000"}},
    },
    "states": {
        "out": {"book": {"publisher": "*:7000", "replyer": "0.0.0.0:7001"}},
        "in": {"book": {"subscriber": "ipc:///tmp/book", "requester": "inproc://book"}},
    },
}


def write(tmp_path, data, name="addresses.json"):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


# --- load_addresses ------------------------------------------------------------------------


def test_load_none_is_empty():
    assert load_addresses(None) == {}


def test_load_dict():
    assert load_addresses(ADDRESSES) == ADDRESSES


def test_load_file(tmp_path):
    path = write(tmp_path, ADDRESSES)
    loaded = load_addresses(path)
    assert loaded == ADDRESSES
    assert loaded.source == str(path)
    assert load_addresses(str(path)) == ADDRESSES


def test_load_security_section_passes_through():
    data = {"security": {"keys": "whatever"}, "connections": {}}
    assert load_addresses(data) == data


def test_missing_file_names_it(tmp_path):
    with pytest.raises(ConfigError, match="nope.json.*not found"):
        load_addresses(tmp_path / "nope.json")


def test_bad_json_names_file(tmp_path):
    with pytest.raises(ConfigError, match="bad.json.*invalid JSON"):
        load_addresses(write(tmp_path, "{", name="bad.json"))


@pytest.mark.parametrize(
    ("data", "shown"),
    [
        ([1], "expected a JSON object"),
        ({"connection": {}}, "unknown section 'connection'"),
        ({"connections": []}, "connections: expected an object"),
        ({"connections": {"inn": {}}}, "connections.inn: unknown side"),
        ({"connections": {"in": {"echo": "127.0.0.1:5555"}}}, "connections.in.echo"),
        ({"connections": {"in": {"echo": {"replyer": "localhost"}}}},
         "connections.in.echo.replyer"),
        ({"states": {"out": {"b": {"publisher": ["h:1", 5]}}}}, "states.out.b.publisher"),
    ],
)
def test_wrong_shape_names_file_and_place(tmp_path, data, shown):
    path = write(tmp_path, data, name="shape.json")
    with pytest.raises(ConfigError) as info:
        load_addresses(path)
    assert "shape.json" in str(info.value) and shown in str(info.value)


def test_wrong_shape_in_dict():
    with pytest.raises(ConfigError, match="connections.in.echo.replyer"):
        load_addresses({"connections": {"in": {"echo": {"replyer": "no-port"}}}})


def test_not_a_path_or_dict():
    with pytest.raises(ConfigError):
        load_addresses(5)


# --- normalize_endpoint --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("127.0.0.1:5555", "tcp://127.0.0.1:5555"),
        ("localhost:1", "tcp://localhost:1"),
        ("*:5555", "tcp://*:5555"),
        ("0.0.0.0:5555", "tcp://0.0.0.0:5555"),
        ("tcp://host:65535", "tcp://host:65535"),
        ("tcp://127.0.0.1:*", "tcp://127.0.0.1:*"),
        ("[::1]:5555", "tcp://[::1]:5555"),
        ("ipc:///tmp/sock", "ipc:///tmp/sock"),
        ("inproc://name", "inproc://name"),
        ("  127.0.0.1:5555 ", "tcp://127.0.0.1:5555"),
    ],
)
def test_normalize_endpoint(value, expected):
    assert normalize_endpoint(value, where="here") == expected


@pytest.mark.parametrize(
    "value",
    ["", "   ", "localhost", "localhost:", ":5555", "host:abc", "host:0", "host:65536",
     "host:-1", "tcp://host", "udp://host:1", "ipc://", "inproc://", "a b:1", "::1:5555",
     None, 5555, ["h:1"]],
)
def test_normalize_endpoint_rejects(value):
    with pytest.raises(ConfigError) as info:
        normalize_endpoint(value, where="connections.in.echo.replyer")
    assert str(info.value).startswith("connections.in.echo.replyer: ")


def test_normalize_is_idempotent():
    once = normalize_endpoint("h:1", where="w")
    assert normalize_endpoint(once, where="w") == once


# --- endpoints -----------------------------------------------------------------------------------


def test_endpoints_single():
    assert endpoints(ADDRESSES, "connections", "in", "echo", "replyer") == [
        "tcp://127.0.0.1:5555"]


def test_endpoints_never_default_to_all_interfaces():
    assert endpoints(ADDRESSES, "connections", "out", "one", "requester") == [
        "tcp://localhost:6000"]
    assert endpoints(ADDRESSES, "states", "out", "book", "publisher") == ["tcp://*:7000"]
    assert endpoints(ADDRESSES, "states", "out", "book", "replyer") == ["tcp://0.0.0.0:7001"]


def test_endpoints_many():
    assert endpoints(ADDRESSES, "connections", "out", "ask", "requester", many=True) == [
        "tcp://127.0.0.1:5555", "tcp://10.0.0.2:5556"]
    assert endpoints(ADDRESSES, "connections", "out", "one", "requester", many=True) == [
        "tcp://localhost:6000"]


def test_endpoints_list_when_single_expected():
    with pytest.raises(ConfigError, match="one endpoint"):
        endpoints(ADDRESSES, "connections", "out", "ask", "requester")
    one = {"connections": {"out": {"a": {"requester": ["h:1"]}}}}
    assert endpoints(one, "connections", "out", "a", "requester") == ["tcp://h:1"]


def test_endpoints_empty_list():
    data = {"connections": {"out": {"a": {"requester": []}}}}
    with pytest.raises(ConfigError, match="connections.out.a.requester"):
        endpoints(data, "connections", "out", "a", "requester", many=True)


def test_an_endpoint_listed_twice_is_refused_naming_both_places():
    # "a:1" and "tcp://a:1" are one endpoint: the replica would take two turns in three
    data = {"connections": {"out": {"a": {"requester": ["a:1", "b:1", "tcp://a:1"]}}}}
    with pytest.raises(ConfigError, match=r"connections.out.a.requester\[2\]: tcp://a:1 "
                                          r"is listed twice \(also at \[0\]\)"):
        endpoints(data, "connections", "out", "a", "requester", many=True)


def test_endpoints_other_schemes():
    assert endpoints(ADDRESSES, "states", "in", "book", "subscriber") == ["ipc:///tmp/book"]
    assert endpoints(ADDRESSES, "states", "in", "book", "requester") == ["inproc://book"]


@pytest.mark.parametrize(
    ("section", "side", "name", "key"),
    [
        ("connections", "in", "echo", "publisher"),
        ("connections", "in", "other", "replyer"),
        ("connections", "out", "echo", "replyer"),
        ("states", "in", "nothing", "subscriber"),
    ],
)
def test_missing_address_names_dotted_path(section, side, name, key):
    with pytest.raises(ConfigError) as info:
        endpoints(ADDRESSES, section, side, name, key)
    assert str(info.value) == f"missing address {section}.{side}.{name}.{key}"


def test_missing_address_in_empty_addresses():
    with pytest.raises(ConfigError, match="missing address connections.in.echo.replyer"):
        endpoints({}, "connections", "in", "echo", "replyer")


def test_missing_address_names_file(tmp_path):
    path = write(tmp_path, ADDRESSES, name="addr.json")
    loaded = load_addresses(path)
    with pytest.raises(ConfigError) as info:
        endpoints(loaded, "connections", "in", "nope", "replyer")
    assert str(info.value) == f"missing address connections.in.nope.replyer in {path}"


def test_source_kwarg_names_file():
    with pytest.raises(ConfigError, match="in my.json"):
        endpoints({}, "connections", "in", "echo", "replyer", source="my.json")


def test_bad_endpoint_in_dict_given_later():  # e.g. set by setup_addresses
    data = {"connections": {"in": {"echo": {"replyer": "localhost"}}}}
    with pytest.raises(ConfigError, match="connections.in.echo.replyer"):
        endpoints(data, "connections", "in", "echo", "replyer")


def test_bad_lookup_arguments_are_programming_errors():
    with pytest.raises(ValueError):
        endpoints(ADDRESSES, "connection", "in", "echo", "replyer")
    with pytest.raises(ValueError):
        endpoints(ADDRESSES, "connections", "inbound", "echo", "replyer")
