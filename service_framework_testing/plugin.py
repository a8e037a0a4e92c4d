"""The pytest plugin: `sf_service`, `sf_bus`, `sf_trace` and the `--sf-*` options.

Registered through the `pytest11` entry point and inert until a test asks for a fixture.
"""

from __future__ import annotations

import datetime as _dt
import threading
from typing import Any, Iterator

import pytest

from service_framework.errors import InvariantViolation
from service_framework.logs import reset_rate_limit
from service_framework.service import running_services
from service_framework.transport.memory import DEFAULT_START, MemoryBus
from service_framework.transport.zmq import default_zmq_transport

from .bus import TestBus
from .harness import ServiceHarness
from .plans import LEVELS
from .replay import TraceFixture
from .simulation import sweep

_FIXTURES = ("sf_service", "sf_bus", "sf_trace")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("service_framework")
    group.addoption("--sf-transport", choices=("memory", "zmq", "both"), default="memory",
                    help="transport of sf_service: the memory bus, real ZMQ on loopback, "
                         "or both (every test using sf_service runs on each)")
    group.addoption("--sf-seed", type=int, default=0,
                    help="seed of the memory bus (ordering choices and fault draws)")
    group.addoption("--sf-start", default=DEFAULT_START.isoformat(),
                    help="virtual clock start, ISO 8601 (default 2030-01-01T00:00:00+00:00)")
    group.addoption("--sf-runs", type=int, default=None,
                    help="run every sf_bus test body on this many seeds, from --sf-seed "
                         "(default: the sf_simulate marker's runs, else one run)")
    group.addoption("--sf-faults", choices=LEVELS, default=None,
                    help="fault level of seed sweeps: calm, stormy or hostile "
                         "(default: the sf_simulate marker's, else stormy)")
    group.addoption("--sf-check-determinism", action="store_true",
                    help="run each seed of a sweep twice and compare the deliveries")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "sf_simulate(runs=100, faults='stormy'): run the test body on many seeds "
        "of the memory bus (sf_bus), with a fault level, checking invariants; a failure is "
        "shrunk and kept as traces (see service_framework_testing.simulation)")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if (metafunc.config.getoption("sf_transport") == "both"
            and "sf_service" in metafunc.fixturenames):
        metafunc.parametrize("sf_transport_name", ["memory", "zmq"], scope="function")


@pytest.fixture
def sf_transport_name(request: pytest.FixtureRequest) -> str:
    """The default transport of `sf_service` in this test ('memory' or 'zmq')."""
    return request.config.getoption("sf_transport")


def _start(config: pytest.Config) -> _dt.datetime:
    start = _dt.datetime.fromisoformat(config.getoption("sf_start"))
    return start if start.tzinfo else start.replace(tzinfo=_dt.timezone.utc)


@pytest.fixture
def sf_bus(request: pytest.FixtureRequest) -> Iterator[TestBus]:
    """The memory bus of this test: seeded, virtual time, faults, several services."""
    seed = request.config.getoption("sf_seed")
    bus = TestBus(MemoryBus(seed=seed, start=_start(request.config)))
    request.node.stash[_seed_key] = seed
    before = {id(service) for service in running_services()}
    threads_before = set(threading.enumerate())
    try:
        yield bus
    finally:
        bus.close()
        _check_leaks(before, threads_before, bus)


@pytest.fixture
def sf_service(request: pytest.FixtureRequest, sf_bus: TestBus, sf_transport_name: str):
    """Makes a `ServiceHarness`: `sf_service(spec, *, config, addresses, main_mode, transport)`."""
    harnesses: list[ServiceHarness] = []

    def make(spec: Any, *, config: Any = None, addresses: Any = None, main_mode: bool = False,
             transport: str | None = None) -> ServiceHarness:
        name = transport or sf_transport_name
        if name == "memory":
            harness = sf_bus.service(spec, config=config, addresses=addresses,
                                     main_mode=main_mode)
        elif name == "zmq":
            harness = ServiceHarness(spec, transport=default_zmq_transport(), config=config,
                                     addresses=addresses, main_mode=main_mode)
            harnesses.append(harness)
            sf_bus.elsewhere.append(harness)  # its errors are checked with the bus's
        else:
            raise ValueError(f"transport must be 'memory' or 'zmq', got {name!r}")
        return harness

    yield make
    for harness in harnesses:
        harness.close()


@pytest.fixture
def sf_trace(request: pytest.FixtureRequest, sf_bus: TestBus):
    """Record and replay traces (see `service_framework_testing.replay`)."""
    return TraceFixture(sf_bus, request)


def _check_leaks(before: set[int], threads_before: set[threading.Thread], bus: TestBus) -> None:
    leaked = [service for service in running_services() if id(service) not in before]
    for service in leaked:
        service.stop_service()
    if leaked:
        pytest.fail("test leaked running service(s): "
                    + ", ".join(repr(service) for service in leaked)
                    + " — stop them (stop_service() or a with-block) before the test ends",
                    pytrace=False)
    sockets = bus.bus.open_sockets()
    if sockets:
        pytest.fail("test leaked open memory-bus socket(s): "
                    + ", ".join(socket.owner for socket in sockets), pytrace=False)
    threads = [thread for thread in threading.enumerate()
               if thread not in threads_before and thread.name.startswith("sf-")
               and thread.is_alive()]
    if threads:
        pytest.fail("test leaked service thread(s): "
                    + ", ".join(thread.name for thread in threads), pytrace=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """After the test body: a service survived an error the test did not expect? Then the
    test fails, though the service went on (checked with no line of test code)."""
    reset_rate_limit()  # each test sees its own warnings, whatever the last one flooded
    result = yield
    bus = getattr(item, "funcargs", {}).get("sf_bus")
    if isinstance(bus, TestBus) and item.get_closest_marker("sf_simulate") is None \
            and not item.config.getoption("sf_runs"):
        try:
            bus.check_errors()
        except InvariantViolation as violation:
            pytest.fail(f"a service survived an error the test did not expect: {violation}",
                        pytrace=False)
    return result


_seed_key = pytest.StashKey[int]()
_sweeps_key = pytest.StashKey[list]()


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Runs a simulated test's body once per seed (see `simulation.sweep`)."""
    config = pyfuncitem.config
    marker = pyfuncitem.get_closest_marker("sf_simulate")
    runs = config.getoption("sf_runs") or (marker.kwargs.get("runs", 100) if marker else None)
    if not runs or "sf_bus" not in pyfuncitem.funcargs:
        return None
    level = config.getoption("sf_faults") or (marker.kwargs.get("faults", "stormy")
                                               if marker else "stormy")
    bus: TestBus = pyfuncitem.funcargs["sf_bus"]
    names = pyfuncitem._fixtureinfo.argnames
    arguments = {name: pyfuncitem.funcargs[name] for name in names}
    first = config.getoption("sf_seed")
    result = sweep(bus, lambda _: pyfuncitem.obj(**arguments), runs=runs, faults=level,
                   first_seed=first, name=pyfuncitem.name,
                   check_determinism=config.getoption("sf_check_determinism"))
    config.stash.setdefault(_sweeps_key, []).append(result.summary())
    if result.failure is not None:
        seed = result.failure.seed
        repro = (f"pytest '{pyfuncitem.nodeid}' --sf-seed={seed} --sf-runs=1 "
                 f"--sf-faults={level}")
        pyfuncitem.stash[_seed_key] = seed
        pytest.fail(result.report(repro), pytrace=False)
    return True


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    lines = config.stash.get(_sweeps_key, [])
    if lines:
        terminalreporter.section("service_framework seed sweeps")
        for line in lines:
            terminalreporter.write_line(line)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    simulated = item.get_closest_marker("sf_simulate") or item.config.getoption("sf_runs")
    if report.failed and _seed_key in item.stash and not simulated:  # (a sweep says its own)
        seed = item.stash[_seed_key]
        report.sections.append((
            "service_framework",
            f"reproduce: pytest '{item.nodeid}' --sf-seed={seed} "
            f"--sf-start={item.config.getoption('sf_start')}"))
