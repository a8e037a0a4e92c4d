"""`service_framework topology`: the system as Mermaid text and an HTML page, with dangling
endpoints, duplicate binds and model mismatches reported (issue 14, item 5)."""

from __future__ import annotations

import json
import re
import textwrap

import pytest
from helpers import EXAMPLES, run_cli

EXAMPLE_SERVICES = {
    "echo": ["replyer.py", "requester.py"],
    "pubsub": ["publisher.py", "subscriber.py"],
    "order_book": ["producer.py", "consumer.py"],
    "external_target": ["service.py", "client.py"],
}
EXPECTED_EDGES = {
    "echo": 'requester -->|"echo (request)<br/>tcp://127.0.0.1:45201"| replyer',
    "pubsub": 'publisher -->|"ticks (publish)<br/>tcp://127.0.0.1:45401"| subscriber',
    "order_book": 'producer ==>|"book (state)<br/>tcp://127.0.0.1:45301"| consumer',
    "external_target": 'client -->|"convert (request)<br/>tcp://127.0.0.1:45411"| service',
}


def topology(*args) -> tuple[int, str, str]:
    """(exit status, the Mermaid text with node ids replaced by their names, stderr)."""
    result = run_cli("topology", *map(str, args))
    return result.returncode, named(result.stdout), result.stderr


def named(mermaid: str) -> str:
    """Node ids (s0, s1…: names are only shown) replaced by the names they show."""
    ids = dict(re.findall(r'^  (s\d+)\["([^"]*)"\]$', mermaid, re.M))
    return re.sub(r"\b(s\d+)\b", lambda match: ids.get(match[1], match[1]), mermaid)


@pytest.mark.parametrize("example", sorted(EXAMPLE_SERVICES))
def test_every_example_draws_clean(example):
    folder = EXAMPLES / example
    services = [arg for name in EXAMPLE_SERVICES[example] for arg in ("-s", folder / name)]
    code, out, err = topology(folder / "addresses.json", *services)
    assert code == 0, err
    assert out.startswith("flowchart LR\n") and EXPECTED_EDGES[example] in out


def write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text) if name.endswith(".py") else text)
    return path


def test_a_requester_pointing_where_nothing_binds_is_dangling(tmp_path):
    addresses = write(tmp_path, "client.json", json.dumps({"connections": {"out": {
        "prices": {"requester": ["127.0.0.1:47001", "127.0.0.1:47002"]}}}}))
    server = write(tmp_path, "server.json", json.dumps({"connections": {"in": {
        "prices": {"replyer": "127.0.0.1:47001"}}}}))
    code, out, err = topology(addresses, server)
    assert code == 1
    assert err.strip().splitlines() == [
        f"dangling: {addresses}: connections.out.prices.requester connects to "
        "tcp://127.0.0.1:47002, where nothing binds"]
    assert 'client -->|"prices (request)<br/>tcp://127.0.0.1:47001"| server' in out
    assert 'nothing at tcp://127.0.0.1:47002' in out


def test_two_sockets_binding_one_endpoint_are_reported(tmp_path):
    first = write(tmp_path, "first.json", json.dumps({"connections": {"in": {
        "echo": {"replyer": "127.0.0.1:47010"}}}}))
    second = write(tmp_path, "second.json", json.dumps({"states": {"out": {
        "book": {"publisher": "127.0.0.1:47010", "replyer": "127.0.0.1:47011"}}}}))
    code, _, err = topology(first, second)
    assert code == 1
    assert (f"duplicate bind: tcp://127.0.0.1:47010 is bound by {first}: "
            f"connections.in.echo.replyer and by {second}: states.out.book.publisher") in err


REPLYER = """
    def on_quote(args, to_send, states, config):
        return {"price": 1}

    connection_models = {"in": {"quote": {
        "connection_type": "replyer",
        "required_creation_arguments": {"on_new_request": on_quote},
        "required_arguments": {"symbol": str, "qty": int},
        "required_return_arguments": {"price": int}}}}
"""
REQUESTER = """
    from decimal import Decimal

    connection_models = {"out": {"quote": {
        "connection_type": "requester",
        "required_arguments": {"symbol": str, "qty": Decimal, "venue": str},
        "required_return_arguments": {"price": int, "fee": int}}}}
"""


def test_model_mismatches_between_a_requester_and_its_replyer(tmp_path):
    replyer = write(tmp_path, "quotes.py", REPLYER)
    requester = write(tmp_path, "trader.py", REQUESTER)
    addresses = write(tmp_path, "addresses.json", json.dumps({"connections": {
        "in": {"quote": {"replyer": "127.0.0.1:47020"}},
        "out": {"quote": {"requester": "127.0.0.1:47020"}}}}))
    code, _, err = topology(addresses, "-s", replyer, "-s", requester)
    assert code == 1
    link = "model mismatch, trader.quote -> quotes.quote"
    assert err.strip().splitlines() == [
        f"{link}: sends 'venue', which the other end does not accept",
        f"{link}: 'qty' is sent as Decimal, the other end expects int",
        f"{link} (reply): never sends 'fee', which the other end requires"]


def test_model_mismatches_of_a_state_and_of_a_subscription(tmp_path):
    out = write(tmp_path, "out.py", """
        state_models = {"out": {"book": {"state_type": "delta_update_out",
                                         "optional_arguments": {"bids": {str: int}}}}}
        connection_models = {"out": {"ticks": {"connection_type": "publisher",
                                               "optional_arguments": {"px": float}}}}
    """)
    into = write(tmp_path, "into.py", """
        def on_tick(args, to_send, states, config):
            pass

        state_models = {"in": {"book": {"state_type": "delta_update_in",
                                        "required_arguments": {"bids": {str: float}}}}}
        connection_models = {"in": {"ticks": {"connection_type": "subscriber",
            "required_creation_arguments": {"on_new_message": on_tick},
            "required_arguments": {"px": float}}}}
    """)
    addresses = write(tmp_path, "addresses.json", json.dumps({
        "states": {"out": {"book": {"publisher": "127.0.0.1:47030",
                                    "replyer": "127.0.0.1:47031"}},
                   "in": {"book": {"subscriber": "127.0.0.1:47030",
                                   "requester": "127.0.0.1:47031"}}},
        "connections": {"out": {"ticks": {"publisher": "127.0.0.1:47032"}},
                        "in": {"ticks": {"subscriber": "127.0.0.1:47032"}}}}))
    code, out_text, err = topology(addresses, "-s", out, "-s", into)
    assert code == 1
    assert "model mismatch, out.book -> into.book: may omit 'bids', which the other end " \
           "requires" in err
    assert "model mismatch, out.book -> into.book: 'bids' is sent as dict[str, int], the " \
           "other end expects dict[str, float]" in err
    assert "model mismatch, out.ticks -> into.ticks: may omit 'px'" in err
    assert 'out ==>|"book (state)' in out_text


def test_an_html_page_draws_the_picture_and_lists_the_problems(tmp_path):
    addresses = write(tmp_path, "client.json", json.dumps({"connections": {"out": {
        "prices": {"requester": "127.0.0.1:47040"}}}}))
    page = tmp_path / "topology.html"
    code, _, _ = topology(addresses, "--html", page)
    assert code == 1
    text = page.read_text()
    assert "<svg" in text and "</svg>" in text and "<script" not in text
    assert "dangling: " in text and "flowchart LR" in text


def test_subscribers_of_a_proxy_are_not_dangling(tmp_path):
    addresses = write(tmp_path, "listener.json", json.dumps({"connections": {"in": {
        "ticks": {"subscriber": "127.0.0.1:47051"}}}}))
    code, out, err = topology(addresses, "--proxy", "127.0.0.1:47050", "127.0.0.1:47051")
    assert code == 0, err
    assert 'proxy -->|"xpub (publish)<br/>tcp://127.0.0.1:47051"| listener' in out


def test_an_unreadable_file_exits_2(tmp_path):
    code, _, err = topology(tmp_path / "missing.json")
    assert code == 2 and "missing.json" in err


def test_a_service_that_requires_config_is_drawn_with_its_config(tmp_path):
    service = write(tmp_path, "needs.py", """
        config_model = {"required": {"region": str}}

        def on_quote(args, to_send, states, config):
            return {}

        connection_models = {"in": {"quote": {
            "connection_type": "replyer",
            "required_creation_arguments": {"on_new_request": on_quote}}}}
    """)
    addresses = write(tmp_path, "addresses.json", json.dumps({"connections": {"in": {
        "quote": {"replyer": "127.0.0.1:47060"}}}}))
    code, _, err = topology(addresses, "-s", service)
    assert code == 2 and "region" in err
    config = write(tmp_path, "needs_config.json", json.dumps({"region": "eu"}))
    code, out, err = topology(addresses, "-s", service, "-c", config)
    assert code == 0, err
    assert 'needs["needs"]' in out
    code, _, err = topology(addresses, "-c", config)  # whose config? not silently dropped
    assert code == 2 and "-c" in err, err


@pytest.mark.parametrize("binds, duplicate", [
    (["*:47070", "127.0.0.1:47070"], True),  # a wildcard takes the port on every address
    (["127.0.0.1:47070", "0.0.0.0:47070"], True),
    (["[::]:47070", "127.0.0.1:47070"], True),  # [::] binds IPv4 too (libzmq maps it)
    (["*:47070", "[::1]:47070"], False),  # `*` binds IPv4 only
    (["127.0.0.1:47070", "127.0.0.2:47070"], False),
    (["127.0.0.1:*", "127.0.0.1:*"], False),  # ports libzmq picks
])
def test_binds_that_collide_on_one_host_are_duplicates(tmp_path, binds, duplicate):
    files = [write(tmp_path, f"b{n}.json", json.dumps({"connections": {"in": {
        "echo": {"replyer": bind}}}})) for n, bind in enumerate(binds)]
    code, _, err = topology(*files)
    assert ("duplicate bind" in err) is duplicate, err
    assert code == (1 if duplicate else 0), err


@pytest.mark.parametrize("bind, connect, reached", [
    ("[::]:47080", "[::1]:47080", True),
    ("*:47080", "[::1]:47080", False),  # `*` binds IPv4 only
    ("127.0.0.1:47080", "localhost:47080", True),
    ("0.0.0.0:47080", "127.0.0.1:47080", True),
])
def test_a_connect_reaches_the_binds_libzmq_would_reach(tmp_path, bind, connect, reached):
    server = write(tmp_path, "server.json", json.dumps({"connections": {"in": {
        "echo": {"replyer": bind}}}}))
    client = write(tmp_path, "client.json", json.dumps({"connections": {"out": {
        "echo": {"requester": connect}}}}))
    code, out, err = topology(client, server)
    assert ("dangling" not in err) is reached, err
    assert ("client -->|" in out) is reached, out


def test_services_of_one_name_stay_apart(tmp_path):
    """Two `svc.json` in two folders, and one service file run twice, are two nodes each."""
    for folder, port in (("east", 47090), ("west", 47091)):
        (tmp_path / folder).mkdir()
        write(tmp_path / folder, "svc.json", json.dumps({"connections": {"in": {
            "echo": {"replyer": f"127.0.0.1:{port}"}}}}))
    code, out, err = topology(tmp_path / "east" / "svc.json", tmp_path / "west" / "svc.json")
    assert code == 0, err
    assert '["svc"]' in out and '["svc (west)"]' in out
    replyer = write(tmp_path, "quotes.py", REPLYER)
    first, second = (write(tmp_path, f"{name}.json", json.dumps({"connections": {"in": {
        "quote": {"replyer": f"127.0.0.1:{port}"}}}}))
        for name, port in (("a", 47092), ("b", 47093)))
    code, out, err = topology(first, second, "-s", replyer, "-s", replyer)
    assert code == 0, err
    assert '["quotes"]' in out and '["quotes (b)"]' in out


def test_names_mermaid_would_read_as_syntax_are_quoted_in_its_entity_codes(tmp_path):
    server = write(tmp_path, "end.json", json.dumps({"connections": {"in": {
        'odd"]|name': {"replyer": "127.0.0.1:47095"}}}}))
    client = write(tmp_path, "client.json", json.dumps({"connections": {"out": {
        'odd"]|name': {"requester": "127.0.0.1:47095"}}}}))
    result = run_cli("topology", str(client), str(server))
    assert result.returncode == 0, result.stderr
    assert '  s1["end"]' in result.stdout  # `end` is a Mermaid word: never an id
    assert '-->|"odd#quot;]|name (request)<br/>tcp://127.0.0.1:47095"| s1' in result.stdout


def test_an_html_page_that_cannot_be_written_exits_2(tmp_path):
    addresses = write(tmp_path, "server.json", json.dumps({"connections": {"in": {
        "echo": {"replyer": "127.0.0.1:47097"}}}}))
    code, _, err = topology(addresses, "--html", tmp_path)  # a folder
    assert code == 2 and "--html" in err and len(err.strip().splitlines()) == 1, err
