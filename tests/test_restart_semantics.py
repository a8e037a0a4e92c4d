"""A restart is a new process: the service module is imported again (fresh globals), but for
the names it lists in `persistent_globals` — what a real service keeps in a database. A
service crashed for good is a state, not a leak. On the memory bus and over ZeroMQ."""

import importlib
import sys
import types
from pathlib import Path

import pytest
from helpers import free_port

from service_framework import ModelError, Service
from service_framework.transport.zmq import default_zmq_transport

SERVICES = Path(__file__).parent / "services"
INVENTORY = SERVICES / "inventory.py"
ECHO = Path(__file__).parents[1] / "examples" / "echo" / "replyer.py"


def module(harness):
    return harness.service.definition.module


@pytest.mark.parametrize("transport", ["memory", "zmq"])
def test_a_restart_imports_the_module_again_and_keeps_only_its_persistent_globals(
        sf_service, transport):
    inventory = sf_service(INVENTORY, transport=transport)
    inventory.request("reserve", {"seat": "1A"})
    before = module(inventory)
    assert before.SERVED == {"count": 1}
    inventory.service.crash()
    inventory.service.restart()
    after = module(inventory)
    assert after is not before
    assert after.SERVED == {"count": 0}  # a new process counts from zero
    assert after.SEATS is before.SEATS  # the "database" is the same object
    inventory.request("reserve", {"seat": "1B"})  # at the same address as before
    assert after.SEATS == {"reserved": ["1A", "1B"], "committed": []}
    assert after.SERVED == {"count": 1} and before.SERVED == {"count": 1}


def test_sf_bus_restart_runs_the_service_from_a_fresh_module(sf_bus):
    inventory = sf_bus.service(INVENTORY)
    inventory.request("commit", {"seat": "2C"})
    sf_bus.crash("inventory")
    sf_bus.restart("inventory")
    assert module(inventory).SERVED == {"count": 0}
    assert module(inventory).SEATS["committed"] == ["2C"]


def test_a_module_given_as_an_object_is_imported_again_from_its_file(sf_service):
    sys.path.insert(0, str(SERVICES))
    try:
        imported = importlib.import_module("inventory")
    finally:
        sys.path.remove(str(SERVICES))
    try:
        inventory = sf_service(imported)
        inventory.request("reserve", {"seat": "3D"})
        inventory.service.crash()
        inventory.service.restart()
        assert module(inventory) is not imported and module(inventory).SERVED == {"count": 0}
        assert sys.modules["inventory"] is imported  # what importers see is left alone
        assert imported.SERVED == {"count": 1}
    finally:
        sys.modules.pop("inventory", None)


def test_a_module_without_a_file_cannot_be_imported_again_and_keeps_its_globals(sf_service):
    built = types.ModuleType("built")
    built.SERVED = []

    def on_ping(args, to_send, states, config):
        built.SERVED.append(1)
        return {}

    built.connection_models = {"in": {"ping": {
        "connection_type": "replyer", "required_creation_arguments": {"on_new_request": on_ping}}}}
    harness = sf_service(built)
    harness.request("ping", {})
    harness.service.crash()
    harness.service.restart()
    harness.request("ping", {})
    assert module(harness) is built and built.SERVED == [1, 1]


def test_restart_without_reload_keeps_the_module(sf_service):
    inventory = sf_service(INVENTORY)
    inventory.request("reserve", {"seat": "4E"})
    first = module(inventory)
    inventory.service.crash()
    inventory.service.restart(reload=False)
    assert module(inventory) is first and first.SERVED == {"count": 1}


def test_persistent_globals_is_checked_when_the_service_loads(sf_service):
    broken = types.ModuleType("broken")
    broken.persistent_globals = "LEDGER"  # a string, not a tuple of names
    with pytest.raises(ModelError, match="persistent_globals: expected a tuple"):
        sf_service(broken)


def test_a_service_given_a_path_reimports_on_restart_with_its_config(tmp_path):
    address = f"127.0.0.1:{free_port()}"
    service = Service(service_path=ECHO, config={"prefix": "> "}, console_loglevel="WARNING",
                      transport=default_zmq_transport(),
                      addresses={"connections": {"in": {"echo": {"replyer": address}}}})
    first = service.definition.module
    first.served["count"] = 41
    service.run_service()
    try:
        service.crash()
        service.restart()
        assert service.definition.module is not first
        assert service.definition.module.served == {"count": 0}
        assert service.definition.config["prefix"] == "> "
    finally:
        service.stop_service()


# -- 4. a crash without restart is a state, not a leak ------------------------------------------
CRASHED_FOR_GOOD = """
from service_framework_testing import ServiceCrashed

ECHO = {echo!r}
AT = {{"connections": {{"in": {{"echo": {{"replyer": "127.0.0.1:7400"}}}}}}}}


def test_crashed_between_statements(sf_bus):
    replyer = sf_bus.service(ECHO, addresses=AT)
    sf_bus.faults.crash("replyer")
    assert not replyer.running


def test_crashed_mid_run(sf_bus):
    replyer = sf_bus.service(ECHO, addresses=AT)
    sf_bus.faults.crash("replyer", at=1.0)
    sf_bus.advance(2)
    assert not replyer.running and sf_bus.faults.crashed == ["replyer"]


def test_crashed_on_zmq(sf_service):
    replyer = sf_service(ECHO, transport="zmq")
    replyer.service.crash()
"""


def test_a_service_crashed_for_good_is_not_reported_as_a_leak(pytester):
    pytester.makepyfile(CRASHED_FOR_GOOD.format(echo=str(ECHO)))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)
    assert "leaked" not in result.stdout.str()
