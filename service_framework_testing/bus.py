"""`sf_bus`: the memory bus of one test, with virtual time that `datetime.now()`,
`time.time()`, `time.monotonic()` and `time.sleep()` in services follow; `memory_bus()`:
the same for a block of code (one example of a Hypothesis test)."""

from __future__ import annotations

import contextlib
import datetime as _dt
import random as _random
from typing import Any, Callable, Iterator

from freezegun import freeze_time

from service_framework.errors import ServiceCrashed
from service_framework.service import running_services
from service_framework.transport.memory import DEFAULT_START, MemoryBus

from . import virtual_time
from .faults import Faults
from .harness import ServiceHarness
from .invariants import Invariants
from .simulation import Schedule

# Code that must keep real time while the bus freezes it for services: the transports that
# run in real time, and the test runner's own timing (pytest's --durations and Hypothesis's
# deadlines measured the virtual clock's jumps: a test "took" decades).
_REAL_TIME_MODULES = ["_pytest", "pluggy", "hypothesis", "zmq", "service_framework.transport.zmq",
                      "service_framework.transport.clocks", "service_framework.transport.zap",
                      "service_framework.transport.threads", "service_framework_testing.source",
                      "service_framework_testing.faulty", "service_framework.service",
                      "service_framework_testing.simulation"]


class TestBus:
    """Runs several services together on one seeded `MemoryBus`, with a fault plan."""

    __test__ = False  # not a pytest test class

    def __init__(self, bus: MemoryBus) -> None:
        self.harnesses: list[ServiceHarness] = []
        # Harnesses of this test on another transport (sf_service on ZeroMQ): their errors
        # are checked with this bus's expectations.
        self.elsewhere: list[ServiceHarness] = []
        self._freezer = None
        self._frozen = None
        self._sleep = None
        # Called with every runtime a service of this bus starts (a simulation watches them).
        self.runtime_watchers: list[Callable[[Any], None]] = []
        self._use(bus)

    def _use(self, bus: MemoryBus) -> None:
        self.bus = bus
        # The plan draws from the bus's generator: the bus's seed fixes its faults too.
        self.faults = Faults(bus, random=bus.random, name="sf_bus.faults")
        bus.fault_hook = self.faults.apply
        # The test's own randomness (a workload), fixed by the seed like everything else.
        self.random = _random.Random(f"workload-{bus.seed}")
        self.invariants = Invariants(self)

    def reset(self, seed: int, start: _dt.datetime | None = None) -> None:
        """Starts over on a fresh bus with `seed` (a sweep runs the test body once per seed):
        the services stop, virtual time starts again (at `start`, or where it started),
        faults and expectations are cleared."""
        for harness in self.harnesses:
            harness.close()
        self.harnesses.clear()
        old = self.bus
        self._use(MemoryBus(seed=seed, start=start or old.clock.start))
        if self._freezer is not None:
            old.clock.listeners.remove(self._frozen.move_to)
            self._frozen.move_to(self.bus.clock.now())
            self.bus.clock.listeners.append(self._frozen.move_to)

    def follow_schedule(self, deviations: dict[int, int] | None = None) -> None:
        """Steps ready services first-in-first-out, except at the steps `deviations` names
        (step -> index of the ready service taken): the schedule a sweep's report prints."""
        self.bus.scheduler.choose = Schedule(self.seed, dict(deviations or {}))

    def expect_errors(self, *what: type | str) -> None:
        """Exceptions the test means a handler, hook or `main` to raise: classes, or text
        found in the message or in where it was raised. Any other fails the test."""
        self.invariants.expected_errors.extend(what)

    def invariant(self, check: Callable[["TestBus"], Any]) -> Callable[["TestBus"], Any]:
        """Adds a check of the test's own, run after every delivery (usable as a decorator);
        it fails the run by raising or by returning False."""
        self.invariants.user.append(check)
        return check

    def check_errors(self) -> None:
        """Fails (`InvariantViolation`) on an error a service survived that the test did not
        expect, naming the seed, the virtual time, the service and the error."""
        self.invariants.check_errors([*self.harnesses, *self.elsewhere])

    @property
    def seed(self) -> int:
        return self.bus.seed

    @property
    def clock(self):
        return self.bus.clock

    @property
    def deliveries(self) -> list[str]:
        """One line per message the bus delivered: the bus's own trace of the run."""
        return self.bus.deliveries

    def service(self, spec: Any, *, config: Any = None, addresses: Any = None,
                main_mode: bool = False, transport: str | None = None) -> ServiceHarness:
        """A `ServiceHarness` on this bus, wired to the others by its addresses."""
        if transport not in (None, "memory"):
            raise ValueError("sf_bus.service runs on the memory bus; use sf_service for zmq")
        self.freeze_time()
        harness = ServiceHarness(spec, transport=self.bus, config=config, addresses=addresses,
                                 main_mode=main_mode, runtime_watchers=self.runtime_watchers)
        self.harnesses.append(harness)
        return harness

    def run_until_idle(self) -> int:
        return self.bus.scheduler.run_until_idle()

    def advance(self, seconds: float) -> None:
        self.bus.scheduler.advance(seconds)

    def crash(self, name: str) -> None:
        """Ends service `name` abruptly (see `Faults.crash`)."""
        self.faults.crash(name)

    def restart(self, name: str) -> None:
        """Starts a crashed service again, and lets the bus settle."""
        self.faults.restart(name)
        self.bus.scheduler.run_until_idle()

    def freeze_time(self) -> None:
        """`datetime.now()`, `time.time()` and `time.monotonic()` in service code follow the
        virtual clock, and `time.sleep()` in service code lets virtual time pass
        (`virtual_time`); pytest's and Hypothesis's own timing stays real.

        Started with the first service on the bus, so a test that only runs services on
        ZMQ keeps real time (ZMQ deadlines must not freeze).
        """
        if self._freezer is not None:
            return
        self._freezer = freeze_time(self.bus.clock.now(), ignore=_REAL_TIME_MODULES)
        self._frozen = self._freezer.start()
        self.bus.clock.listeners.append(self._frozen.move_to)
        self._sleep = virtual_time.install(self._virtual_sleep, _REAL_TIME_MODULES)

    def _virtual_sleep(self, seconds: float) -> bool:
        """A service's `time.sleep` on this bus: virtual time passes, the bus runs; a crash
        of the sleeping service ends the sleep and unwinds its code (`ServiceCrashed`).
        False (a real sleep follows) when the caller is no service of this bus."""
        runtime = virtual_time.calling_runtime()
        if runtime is None or runtime.transport is not self.bus:
            return False
        poller = runtime.poller

        def crashed() -> list:
            return [poller] if getattr(poller, "crashed", False) else []

        if not crashed():
            self.bus.scheduler.sleep(seconds, until=crashed)
        if crashed():
            raise ServiceCrashed(runtime.name)
        return True

    def close(self) -> None:
        for harness in self.harnesses:
            harness.close()
        self.harnesses.clear()
        if self._freezer is not None:
            virtual_time.uninstall(self._sleep)
            self.bus.clock.listeners.remove(self._frozen.move_to)
            self._freezer.stop()
            self._freezer = None


@contextlib.contextmanager
def memory_bus(seed: int = 0, *, start: _dt.datetime = DEFAULT_START) -> Iterator[TestBus]:
    """A fresh `TestBus` for a block of code, closed at its end (its services stop, time
    unfreezes): one bus per example of a Hypothesis test, with Hypothesis's default
    settings.

        @given(qty=st.integers(1, 100))
        def test_quotes(qty):
            with memory_bus(seed=0) as bus:
                shop = bus.service("tests/services/shop.py")
                ...

    A service started on it outside a harness and left running fails the block, named
    (and is stopped), as does an error a service survived that the block did not expect
    (`bus.expect_errors`), as `sf_bus` does at the end of a test.
    """
    bus = TestBus(MemoryBus(seed=seed, start=start))
    before = {id(service) for service in running_services()}
    harnesses: list[ServiceHarness] = []
    try:
        yield bus
        harnesses = list(bus.harnesses)
    finally:
        bus.close()
        leaked = [service for service in running_services()
                  if service.transport is bus.bus and id(service) not in before]
        for service in leaked:
            service.stop_service()
    if leaked:
        raise AssertionError("memory_bus: left running: " + ", ".join(map(repr, leaked))
                             + " — stop them (stop_service() or a with-block) in the block")
    bus.invariants.check_errors(harnesses)
