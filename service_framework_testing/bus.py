"""`sf_bus`: the memory bus of one test, with virtual time that `datetime.now()` follows."""

from __future__ import annotations

import random as _random
from typing import Any, Callable

from freezegun import freeze_time

from service_framework.transport.memory import MemoryBus

from .faults import Faults
from .harness import ServiceHarness
from .invariants import Invariants

# Code that must keep real time while the bus freezes it for services.
_REAL_TIME_MODULES = ["zmq", "service_framework.transport.zmq",
                      "service_framework.transport.clocks", "service_framework.transport.zap",
                      "service_framework.transport.threads", "service_framework_testing.source",
                      "service_framework_testing.faulty", "service_framework.service"]


class TestBus:
    """Runs several services together on one seeded `MemoryBus`, with a fault plan."""

    __test__ = False  # not a pytest test class

    def __init__(self, bus: MemoryBus) -> None:
        self.harnesses: list[ServiceHarness] = []
        self._freezer = None
        self._frozen = None
        # Called with every runtime a service of this bus starts (a simulation watches them).
        self.runtime_watchers: list[Callable[[Any], None]] = []
        self._use(bus)

    def _use(self, bus: MemoryBus) -> None:
        self.bus = bus
        # The plan draws from the bus's generator: the bus's seed fixes its faults too.
        self.faults = Faults(bus, random=bus.random)
        bus.fault_hook = self.faults.apply
        # The test's own randomness (a workload), fixed by the seed like everything else.
        self.random = _random.Random(f"workload-{bus.seed}")
        self.invariants = Invariants(self)

    def reset(self, seed: int) -> None:
        """Starts over on a fresh bus with `seed` (a sweep runs the test body once per seed):
        the services stop, virtual time starts again, faults and expectations are cleared."""
        for harness in self.harnesses:
            harness.close()
        self.harnesses.clear()
        old = self.bus
        self._use(MemoryBus(seed=seed, start=old.clock.start))
        if self._freezer is not None:
            old.clock.listeners.remove(self._frozen.move_to)
            self._frozen.move_to(self.bus.clock.now())
            self.bus.clock.listeners.append(self._frozen.move_to)

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
        self.invariants.check_errors(self.harnesses)

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
        """`datetime.now()` and `time.time()` in service code follow the virtual clock.

        Started with the first service on the bus, so a test that only runs services on
        ZMQ keeps real time (ZMQ deadlines must not freeze).
        """
        if self._freezer is not None:
            return
        self._freezer = freeze_time(self.bus.clock.now(), ignore=_REAL_TIME_MODULES)
        self._frozen = self._freezer.start()
        self.bus.clock.listeners.append(self._frozen.move_to)

    def close(self) -> None:
        for harness in self.harnesses:
            harness.close()
        self.harnesses.clear()
        if self._freezer is not None:
            self.bus.clock.listeners.remove(self._frozen.move_to)
            self._freezer.stop()
            self._freezer = None
