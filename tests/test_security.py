"""CurveZMQ on every socket (SPEC §15): key files, allow-lists, refusals, on both transports.

The ZMQ tests run real services on 127.0.0.1 with free ports and wait on conditions with
deadlines; a request to a refused peer uses a short requester `timeout_s` and expects
`RequestTimeout`. The memory-bus tests show the same allow-list in virtual time.
"""

from __future__ import annotations

import json
import logging
import stat
from pathlib import Path
from typing import Any

import pytest
from helpers import ask, endpoint, free_port, make_module, run_cli, wait_until

from service_framework import ConfigError, RequestTimeout, Service
from service_framework.cli import main as cli_main
from service_framework.loader import load_service
from service_framework.security import keygen, read_key_file
from service_framework.transport.zap import authenticator_running

REFUSED = "not on its allow-list"


# -- keys and services ----------------------------------------------------------------------
class Keys:
    """Key pairs written by `keygen` into a test's folder: `keys.public('server')`…"""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def make(self, name: str) -> "Keys":
        keygen(self.folder / name)
        return self

    def public(self, name: str) -> str:
        return str(self.folder / name / f"{name}.key")

    def secret(self, name: str) -> str:
        return str(self.folder / name / f"{name}.key_secret")

    def public_z85(self, name: str) -> str:
        return read_key_file(Path(self.public(name)), where="test")[0].decode()

    def secret_z85(self, name: str) -> str:
        return read_key_file(Path(self.secret(name)), where="test", secret=True)[1].decode()

    def pair(self, name: str) -> dict:
        return {"public_key": self.public(name), "secret_key": self.secret(name)}


@pytest.fixture
def keys(tmp_path: Path) -> Keys:
    made = Keys(tmp_path / "keys")
    for name in ("server", "client", "stranger", "other"):
        made.make(name)
    return made


def replyer_module(name: str = "guard") -> Any:
    """An `echo` replyer whose handler records every request it runs in `module.handled`."""
    handled: list = []

    def on_new_request(args, to_send, states, config):
        handled.append(args["text"])
        return {"text": args["text"].upper()}

    module = make_module(name, connection_models={"in": {"echo": {
        "connection_type": "replyer",
        "required_creation_arguments": {"on_new_request": on_new_request},
        "required_arguments": {"text": str}, "required_return_arguments": {"text": str}}}})
    module.handled = handled
    return module


def requester_module(name: str = "caller", *, timeout_s: float = 5.0, retries: int = 0) -> Any:
    return make_module(name, connection_models={"out": {"echo": {
        "connection_type": "requester",
        "optional_creation_arguments": {"timeout_s": timeout_s, "retries": retries},
        "required_arguments": {"text": str}, "required_return_arguments": {"text": str}}}})


def server_addresses(keys: Keys, port: int, *, allowed: list[str] | None = None,
                     me: str = "server") -> dict:
    allowed = ["client"] if allowed is None else allowed
    return {"connections": {"in": {"echo": {"replyer": endpoint(port)}}},
            "security": {**keys.pair(me),
                         "allowed_clients": [keys.public(name) for name in allowed]}}


def client_addresses(keys: Keys, port: int, *, me: str = "client",
                     server: str = "server") -> dict:
    return {"connections": {"out": {"echo": {"requester": endpoint(port)}}},
            "security": {**keys.pair(me), "server_keys": {"echo": keys.public(server)}}}


def plain_client_addresses(port: int) -> dict:
    return {"connections": {"out": {"echo": {"requester": endpoint(port)}}}}


def refusal_warnings(caplog: pytest.LogCaptureFixture, public_z85: str) -> list[str]:
    return [record.getMessage() for record in caplog.records
            if record.levelno == logging.WARNING and public_z85 in record.getMessage()
            and REFUSED in record.getMessage()]


# -- requester / replyer on ZMQ -------------------------------------------------------------
def test_an_allowed_requester_is_served(services, keys):
    port = free_port()
    guard = replyer_module()
    services.start(guard, server_addresses(keys, port))
    caller = services.start(requester_module(), client_addresses(keys, port))
    assert ask(caller, "echo", {"text": "hi"}) == {"text": "HI"}
    assert guard.handled == ["hi"]


def test_relative_key_paths_resolve_against_the_addresses_file(services, keys, tmp_path):
    port = free_port()
    guard = replyer_module()
    services.start(guard, server_addresses(keys, port))
    relative = {"connections": {"out": {"echo": {"requester": endpoint(port)}}},
                "security": {"public_key": "keys/client/client.key",
                             "secret_key": "keys/client/client.key_secret",
                             "server_keys": {"echo": "keys/server/server.key"}}}
    path = tmp_path / "caller.json"
    path.write_text(json.dumps(relative))
    caller = Service(service_module=requester_module(), addresses=str(path),
                     console_loglevel="WARNING")
    services.services.append(caller)
    caller.run_service()
    assert ask(caller, "echo", {"text": "rel"}) == {"text": "REL"}


def test_an_unknown_client_is_refused_its_handler_never_runs_one_warning(services, keys,
                                                                        caplog):
    caplog.set_level(logging.DEBUG)
    port = free_port()
    guard = replyer_module()
    services.start(guard, server_addresses(keys, port))
    # valid keys and the right server key, but not on the allow-list; three fresh
    # sockets (Lazy Pirate retries) and ZMQ's reconnects: many attempts, one warning
    stranger = services.start(requester_module(timeout_s=0.3, retries=2),
                              client_addresses(keys, port, me="stranger"))
    with pytest.raises(RequestTimeout):
        ask(stranger, "echo", {"text": "let me in"})
    wait_until(lambda: refusal_warnings(caplog, keys.public_z85("stranger")),
               message="the refusal warning")
    assert guard.handled == []
    assert len(refusal_warnings(caplog, keys.public_z85("stranger"))) == 1


def test_a_plain_text_requester_cannot_reach_a_secured_replyer(services, keys):
    port = free_port()
    guard = replyer_module()
    services.start(guard, server_addresses(keys, port))
    plain = services.start(requester_module(timeout_s=0.3), plain_client_addresses(port))
    with pytest.raises(RequestTimeout):
        ask(plain, "echo", {"text": "no keys"})
    assert guard.handled == []


def test_a_secured_requester_cannot_talk_to_a_plain_replyer(services, keys):
    port = free_port()
    plain = replyer_module()
    services.start(plain, {"connections": {"in": {"echo": {"replyer": endpoint(port)}}}})
    caller = services.start(requester_module(timeout_s=0.3), client_addresses(keys, port))
    with pytest.raises(RequestTimeout):
        ask(caller, "echo", {"text": "anyone?"})
    assert plain.handled == []


def test_a_client_with_the_wrong_server_key_gets_nothing(services, keys):
    port = free_port()
    guard = replyer_module()
    services.start(guard, server_addresses(keys, port))
    caller = services.start(requester_module(timeout_s=0.3),
                            client_addresses(keys, port, server="other"))
    with pytest.raises(RequestTimeout):
        ask(caller, "echo", {"text": "impostor?"})
    assert guard.handled == []


def test_an_empty_allow_list_refuses_everyone(services, keys):
    port = free_port()
    guard = replyer_module()
    services.start(guard, server_addresses(keys, port, allowed=[]))
    for me in ("client", "server"):  # not even its own key
        caller = services.start(requester_module(f"caller_{me}", timeout_s=0.3),
                                client_addresses(keys, port, me=me))
        with pytest.raises(RequestTimeout):
            ask(caller, "echo", {"text": me})
    assert guard.handled == []


def test_two_secured_services_in_one_process_keep_separate_allow_lists(services, keys):
    port_a, port_b = free_port(), free_port()
    guard_a, guard_b = replyer_module("guard_a"), replyer_module("guard_b")
    services.start(guard_a, server_addresses(keys, port_a, allowed=["client"]))
    services.start(guard_b, server_addresses(keys, port_b, allowed=["stranger"], me="other"))
    to_a = services.start(requester_module("to_a", timeout_s=0.3),
                          client_addresses(keys, port_a))
    to_b = services.start(requester_module("to_b", timeout_s=0.3),
                          client_addresses(keys, port_b, server="other"))
    assert ask(to_a, "echo", {"text": "a"}) == {"text": "A"}
    with pytest.raises(RequestTimeout):
        ask(to_b, "echo", {"text": "b"})  # 'client' is allowed by guard_a, not guard_b
    assert guard_b.handled == []


def test_the_authenticator_runs_only_while_a_secured_service_does(services, keys):
    port = free_port()
    plain = services.start(replyer_module("plain"),
                           {"connections": {"in": {"echo": {"replyer": endpoint(free_port())}}}})
    assert not authenticator_running()  # no security section: nothing changes
    secured = services.start(replyer_module(), server_addresses(keys, port))
    assert authenticator_running()
    secured.stop_service()
    assert not authenticator_running()
    plain.stop_service()


# -- pub/sub and states on ZMQ --------------------------------------------------------------
def publisher_module() -> Any:
    return make_module("ticker", connection_models={"out": {"ticks": {
        "connection_type": "publisher", "required_arguments": {"value": int},
        "optional_creation_arguments": {"min_subscribers": 1,
                                        "wait_for_subscribers_s": 5.0}}}})


def subscriber_module(name: str) -> Any:
    received: list = []
    module = make_module(name, connection_models={"in": {"ticks": {
        "connection_type": "subscriber",
        "required_creation_arguments": {
            "on_new_message": lambda args, to_send, states, config: received.append(
                args["value"])},
        "required_arguments": {"value": int}}}})
    module.received = received
    return module


def test_pubsub_secured_an_allowed_subscriber_receives_an_unknown_one_does_not(
        services, keys, caplog):
    caplog.set_level(logging.WARNING)
    port = free_port()
    pub = services.start(publisher_module(), {
        "connections": {"out": {"ticks": {"publisher": endpoint(port)}}},
        "security": {**keys.pair("server"), "allowed_clients": [keys.public("client")]}})
    stranger, friend = subscriber_module("stranger_sub"), subscriber_module("friend_sub")
    for module, me in ((stranger, "stranger"), (friend, "client")):
        services.start(module, {
            "connections": {"in": {"ticks": {"subscriber": [endpoint(port)]}}},
            "security": {**keys.pair(me), "server_keys": {"ticks": keys.public("server")}}})
    wait_until(lambda: refusal_warnings(caplog, keys.public_z85("stranger")),
               message="the stranger's refusal")
    for value in range(20):  # the first send waits for the one subscriber allowed in
        ask(pub, "ticks", {"value": value})
    wait_until(lambda: len(friend.received) == 20, message="20 messages at the friend")
    assert friend.received == list(range(20))
    assert stranger.received == []


def producer_module() -> Any:
    return make_module("producer", state_models={"out": {"price": {
        "state_type": "full_update_out", "required_arguments": {"value": int},
        "optional_creation_arguments": {"heartbeat_s": 0.2}}}})


def consumer_module(name: str) -> Any:
    return make_module(name, state_models={"in": {"price": {
        "state_type": "full_update_in", "required_arguments": {"value": int},
        "optional_creation_arguments": {"heartbeat_s": 0.2, "snapshot_timeout_s": 0.3}}}})


def test_states_secured_an_allowed_consumer_follows_an_unknown_one_does_not(
        services, keys, caplog):
    caplog.set_level(logging.WARNING)
    pub_port, rep_port = free_port(), free_port()
    producer = services.start(producer_module(), {
        "states": {"out": {"price": {"publisher": endpoint(pub_port),
                                     "replyer": endpoint(rep_port)}}},
        "security": {**keys.pair("server"), "allowed_clients": [keys.public("client")]}})
    consumers = {}
    for name, me in (("friend", "client"), ("stranger_in", "stranger")):
        consumers[name] = services.start(consumer_module(name), {
            "states": {"in": {"price": {"subscriber": [endpoint(pub_port)],
                                        "requester": [endpoint(rep_port)]}}},
            "security": {**keys.pair(me), "server_keys": {"price": keys.public("server")}}})
    producer.runtime.to_send("state", "price", {"value": 42})
    friend = consumers["friend"].runtime.in_states["price"]
    wait_until(lambda: friend.synced and friend.value == {"value": 42},
               message="the friend in sync with value 42")
    stranger = consumers["stranger_in"].runtime.in_states["price"]
    wait_until(lambda: stranger.snapshot_timeouts >= 1, message="a snapshot timeout")
    assert not stranger.synced and stranger.value == {}
    assert len(refusal_warnings(caplog, keys.public_z85("stranger"))) == 1


# -- the command line and the load-time checks ----------------------------------------------
def test_keygen_on_the_command_line_writes_a_key_pair(tmp_path):
    result = run_cli("--keygen", str(tmp_path / "keys" / "orders"))
    assert result.returncode == 0, result.stderr
    public, secret = (Path(line) for line in result.stdout.split())
    assert (public.name, secret.name) == ("orders.key", "orders.key_secret")
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert "secret-key" not in public.read_text() and "public-key" in public.read_text()
    assert read_key_file(secret, where="test", secret=True)[0] == read_key_file(
        public, where="test")[0]
    again = run_cli("--keygen", str(tmp_path / "keys" / "orders"))  # never overwrites
    assert again.returncode == 2 and "already exists" in again.stderr


def write_service(tmp_path: Path, addresses: dict) -> tuple[Path, Path]:
    service = tmp_path / "guard.py"
    service.write_text(
        "def on_new_request(args, to_send, states, config):\n"
        "    return {}\n\n"
        "connection_models = {'in': {'echo': {'connection_type': 'replyer',\n"
        "    'required_creation_arguments': {'on_new_request': on_new_request}}}}\n")
    path = tmp_path / "addresses.json"
    path.write_text(json.dumps(addresses))
    return service, path


def test_check_reports_a_missing_key_file_with_its_path(tmp_path, keys, capsys):
    addresses = server_addresses(keys, free_port())
    addresses["security"]["secret_key"] = "keys/nowhere/gone.key_secret"
    service, path = write_service(tmp_path, addresses)
    assert cli_main(["-s", str(service), "-a", str(path), "--check"]) == 2
    error = capsys.readouterr().err
    assert "security.secret_key" in error
    assert str(tmp_path / "keys" / "nowhere" / "gone.key_secret") in error


def test_check_summarises_security(tmp_path, keys, capsys):
    service, path = write_service(tmp_path, server_addresses(keys, free_port()))
    assert cli_main(["-s", str(service), "-a", str(path), "--check"]) == 0
    out = capsys.readouterr().out
    assert "security: CurveZMQ" in out and keys.public_z85("server") in out
    assert keys.secret_z85("server") not in out


def _with(addresses: dict, **security: Any) -> dict:
    addresses["security"].update(security)
    return addresses


@pytest.mark.parametrize("change, expected", [
    (lambda a, k: _with(a, colour="blue"), "security.colour: unknown key"),
    (lambda a, k: (a["security"].pop("public_key"), a)[1], "security.public_key: missing"),
    (lambda a, k: _with(a, secret_key=k.public("server")), "has no secret-key"),
    (lambda a, k: _with(a, secret_key=k.secret("client")), "not one key pair"),
    (lambda a, k: (a["security"].pop("allowed_clients"), a)[1],
     "security.allowed_clients"),
    (lambda a, k: _with(a, allowed_clients="client.key"), "expected a list"),
    (lambda a, k: _with(a, server_keys={"nope": k.public("server")}),
     "security.server_keys.nope"),
])
def test_a_bad_security_section_is_a_load_error_naming_the_key(keys, change, expected):
    addresses = change(server_addresses(keys, free_port()), keys)
    with pytest.raises(ConfigError, match=expected.replace(".", r"\.")):
        load_service(replyer_module(), addresses=addresses)


def test_a_connecting_socket_without_a_server_key_is_a_load_error(keys):
    addresses = client_addresses(keys, free_port())
    addresses["security"]["server_keys"] = {}
    with pytest.raises(ConfigError, match=r"security\.server_keys\.echo: missing"):
        load_service(requester_module(), addresses=addresses)


def test_a_malformed_key_file_is_a_load_error_that_does_not_quote_it(keys, tmp_path):
    bad = tmp_path / "bad.key_secret"
    secret = keys.secret_z85("server")
    bad.write_text(f'curve\n    public-key = "{keys.public_z85("server")}"\n'
                   f'    secret-key = "{secret[:-3]}"\n')
    bad.chmod(0o600)
    addresses = _with(server_addresses(keys, free_port()), secret_key=str(bad))
    with pytest.raises(ConfigError, match="not a 40-character Z85 key") as error:
        load_service(replyer_module(), addresses=addresses)
    assert secret[:-3] not in str(error.value)


# -- secrets stay secret --------------------------------------------------------------------
def test_secret_keys_never_appear_in_logs_reprs_or_traces(services, keys, caplog, tmp_path):
    caplog.set_level(logging.DEBUG)
    port = free_port()
    trace = tmp_path / "guard.trace.jsonl"
    guard = Service(service_module=replyer_module(), addresses=server_addresses(keys, port),
                    console_loglevel="DEBUG", record_path=str(trace))
    services.services.append(guard)
    guard.run_service()
    caller = services.start(requester_module(), client_addresses(keys, port))
    stranger = services.start(requester_module("stranger", timeout_s=0.3),
                              client_addresses(keys, port, me="stranger"))
    assert ask(caller, "echo", {"text": "hi"}) == {"text": "HI"}
    with pytest.raises(RequestTimeout):
        ask(stranger, "echo", {"text": "hi"})
    wait_until(lambda: refusal_warnings(caplog, keys.public_z85("stranger")),
               message="the refusal warning")
    seen = [repr(service.definition) for service in services.services]
    seen += [repr(service.definition.security) for service in services.services]
    services.stop_all()
    seen.append(caplog.text)
    seen.append(trace.read_text() if trace.exists() else "")
    text = "\n".join(seen)
    assert keys.public_z85("server") in text  # public keys may be shown
    for name in ("server", "client", "stranger"):
        assert keys.secret_z85(name) not in text


# -- the memory bus models the same allow-list ----------------------------------------------
MEMORY_PORT = 31001


def test_memory_bus_serves_an_allowed_peer_and_refuses_an_unknown_one(sf_bus, keys, caplog):
    caplog.set_level(logging.WARNING)
    guard = replyer_module()
    sf_bus.service(guard, addresses=server_addresses(keys, MEMORY_PORT))
    caller = sf_bus.service(requester_module(), addresses=client_addresses(keys, MEMORY_PORT))
    assert caller.runtime.to_send("connection", "echo", {"text": "hi"}) == {"text": "HI"}
    stranger = sf_bus.service(requester_module("stranger", timeout_s=0.5, retries=2),
                              addresses=client_addresses(keys, MEMORY_PORT, me="stranger"))
    before = sf_bus.clock.monotonic()
    with pytest.raises(RequestTimeout):
        stranger.runtime.to_send("connection", "echo", {"text": "let me in"})
    assert sf_bus.clock.monotonic() - before == pytest.approx(1.5)  # 3 attempts, virtual
    assert guard.handled == ["hi"]
    assert len(refusal_warnings(caplog, keys.public_z85("stranger"))) == 1
    assert ("guard.echo", "stranger.echo") in sf_bus.bus.refused


def test_memory_bus_refuses_plain_peers_of_secured_sockets_both_ways(sf_bus, keys):
    guard = replyer_module()
    sf_bus.service(guard, addresses=server_addresses(keys, MEMORY_PORT))
    plain = sf_bus.service(requester_module(timeout_s=0.5),
                           addresses=plain_client_addresses(MEMORY_PORT))
    with pytest.raises(RequestTimeout):
        plain.runtime.to_send("connection", "echo", {"text": "no keys"})
    plain_guard = replyer_module("plain_guard")
    sf_bus.service(plain_guard, addresses={"connections": {"in": {"echo": {
        "replyer": endpoint(MEMORY_PORT + 1)}}}})
    secured = sf_bus.service(requester_module("secured", timeout_s=0.5),
                             addresses=client_addresses(keys, MEMORY_PORT + 1))
    with pytest.raises(RequestTimeout):
        secured.runtime.to_send("connection", "echo", {"text": "anyone?"})
    assert guard.handled == [] and plain_guard.handled == []


def test_memory_bus_empty_allow_list_refuses_everyone(sf_bus, keys):
    guard = replyer_module()
    sf_bus.service(guard, addresses=server_addresses(keys, MEMORY_PORT, allowed=[]))
    caller = sf_bus.service(requester_module(timeout_s=0.5),
                            addresses=client_addresses(keys, MEMORY_PORT))
    with pytest.raises(RequestTimeout):
        caller.runtime.to_send("connection", "echo", {"text": "hi"})
    assert guard.handled == []


def test_memory_bus_secured_states_sync_only_allowed_consumers(sf_bus, keys):
    security = {**keys.pair("server"), "allowed_clients": [keys.public("client")]}
    producer = sf_bus.service(producer_module(), addresses={
        "states": {"out": {"price": {"publisher": endpoint(MEMORY_PORT),
                                     "replyer": endpoint(MEMORY_PORT + 1)}}},
        "security": security})
    consumers = {}
    for name, me in (("friend", "client"), ("stranger_in", "stranger")):
        consumers[name] = sf_bus.service(consumer_module(name), addresses={
            "states": {"in": {"price": {"subscriber": [endpoint(MEMORY_PORT)],
                                        "requester": [endpoint(MEMORY_PORT + 1)]}}},
            "security": {**keys.pair(me), "server_keys": {"price": keys.public("server")}}})
    producer.runtime.to_send("state", "price", {"value": 7})
    sf_bus.advance(1.0)
    assert consumers["friend"].states["price"] == {"value": 7}
    assert consumers["friend"].is_synced("price")
    assert consumers["stranger_in"].states["price"] == {}
    assert not consumers["stranger_in"].is_synced("price")


def test_a_secret_key_file_readable_by_others_is_warned_about(keys, caplog):
    Path(keys.secret("server")).chmod(0o644)
    with caplog.at_level(logging.WARNING):
        load_service(replyer_module(), addresses=server_addresses(keys, free_port()))
    assert any("chmod 600" in record.getMessage() for record in caplog.records)
    assert keys.secret_z85("server") not in caplog.text
