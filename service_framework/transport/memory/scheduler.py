"""Who steps next on the memory bus: one thread steps every service, in an order a seed fixes.

A service is ready when a socket of its has input or a timer of its is due, unless it is
stalled (`stall`: a slow consumer, not stepped for a while). Among ready services the bus's
seeded generator picks one, so a seed fixes the whole interleaving. Nothing moves time but
`advance`, `wait_for` (a poll with a deadline: a request served inline, in virtual time),
`sleep` (a service's `time.sleep` under the test bus) and a blocking run: each moves it to
the next thing that happens — a delivery, a timer, a scheduled call, the end of a stall.
"""

from __future__ import annotations

import bisect
import math
import random as _random
import threading
from typing import Any, Callable, Protocol

from ...errors import ServiceCrashed
from ..base import Clock, Schedulable, Scheduler

# Steps without a pause before run_until_idle concludes services are ping-ponging forever.
SETTLE_LIMIT = 1_000_000
# Up to this many services `_runnable` looks at each of them; past it, at the ready set.
SCAN_UP_TO = 8


class TimedDeliveries(Protocol):
    """Messages the transport holds back until a time (a fault's delay), and calls
    scheduled for a time (a fault plan's entries): `deliver_due` runs both."""

    def next_delivery(self) -> float | None: ...

    def deliver_due(self) -> None: ...


class BusScheduler(Scheduler):
    """Steps the services of one memory bus; see the module's docstring."""

    def __init__(self, clock: Clock, random: _random.Random,
                 deliveries: TimedDeliveries) -> None:
        self.clock = clock
        self.random = random
        self.deliveries = deliveries
        self.runtimes: list[Any] = []  # in the order they started: the seeded choice's order
        self._finishers: dict[Any, Callable[[], None] | None] = {}
        self._blocking: dict[Any, tuple[threading.Thread, threading.Event]] = {}
        # Which of several ready services steps next: an index into the list (in start
        # order). None: the seeded generator picks. A simulation sets it to replay or to
        # shrink a schedule (`service_framework_testing.simulation`).
        self.choose: Callable[[list[Any]], int] | None = None
        # service name -> until when (clock.monotonic(); inf: until `unstall`) it is not
        # stepped: a slow consumer whose sockets fill up to their high-water marks
        self.stalled: dict[str, float] = {}
        # The ready set: pollers told of input since they last had none, the runtime of
        # each service's poller, the runtimes that can have a timer, and each runtime's
        # place in start order (the seeded choice's order). `_runnable` looks at these
        # only, not at every service, and finds exactly what a scan of all would.
        # Runtimes told of input, kept in start order as they come (`_with_input`, and the
        # same as a set); each is checked again only after it stepped (`_stepped`): input
        # is taken off a service's sockets by its own step alone.
        self._with_input: list[Any] = []
        self._has_input: set[Any] = set()
        self._stepped: list[Any] = []
        self._by_poller: dict[Any, Any] = {}
        self._timed: list[Any] = []
        self._order: dict[Any, int] = {}
        self._started = 0
        self.verify = False  # tests: compare every pick with the full scan (`_scan`)

    # -- the Scheduler interface ---------------------------------------------------------
    def start(self, runtime: Schedulable, finish: Callable[[], None] | None = None) -> None:
        if runtime not in self.runtimes:
            self.runtimes.append(runtime)
            self._started += 1
            self._order[runtime] = self._started
            poller = getattr(runtime, "poller", None)
            if poller is not None:
                self._by_poller[poller] = runtime
            if len(self.runtimes) == SCAN_UP_TO + 1:  # from now on the ready set is kept
                self._with_input.clear()
                self._has_input.clear()
                self._stepped[:] = self.runtimes  # each looked at once, then as they step
                for known in self.runtimes:
                    if known in self._order and getattr(known, "poller", None) is not None:
                        self._mark(known)
            elif len(self.runtimes) > SCAN_UP_TO and poller is not None:
                self._mark(runtime)  # it may have input already
                self._stepped.append(runtime)
            if getattr(runtime, "has_timers", True):
                self._timed.append(runtime)
                if hasattr(runtime, "timers_gone"):
                    runtime.timers_gone = self._untimed
        self._finishers[runtime] = finish
        if runtime.stop_requested:  # stopped while starting: nobody would step it again
            self._end(runtime)

    def _untimed(self, runtime: Schedulable) -> None:
        """`runtime` has no timer any more: its deadline is not asked for again."""
        if runtime in self._timed:
            self._timed.remove(runtime)

    def forget(self, runtime: Schedulable) -> None:
        """Stops stepping `runtime`, without finishing it."""
        if runtime in self.runtimes:
            self.runtimes.remove(runtime)
            self._order.pop(runtime, None)
            poller = getattr(runtime, "poller", None)
            if self._by_poller.get(poller) is runtime:
                del self._by_poller[poller]
            if runtime in self._has_input:
                self._has_input.discard(runtime)
                self._with_input.remove(runtime)
            if runtime in self._timed:
                self._timed.remove(runtime)
        self._finishers.pop(runtime, None)

    def stop(self, runtime: Schedulable, timeout_s: float) -> bool:
        runtime.request_stop()
        blocking = self._blocking.get(runtime)
        if blocking is not None and blocking[0] is not threading.current_thread():
            return blocking[1].wait(timeout_s)  # its blocking run finishes it
        self._end(runtime)
        return True

    def _end(self, runtime: Schedulable) -> None:
        served = runtime in self._finishers
        finish = self._finishers.get(runtime)
        self.forget(runtime)
        if served and finish is not None:
            finish()

    def run_blocking(self, runtime: Schedulable, finish: Callable[[], None]) -> None:
        """Serves until `runtime` stops; in virtual time also once nothing can happen any
        more. On a wall clock the thread sleeps while nothing is due (`wake()` ends it)."""
        done = threading.Event()
        self._blocking[runtime] = (threading.current_thread(), done)
        try:
            self.start(runtime, finish)
            while not runtime.stop_requested:
                if self.run_one():
                    continue
                upcoming = self.next_event()
                if upcoming is None and self.clock.virtual:
                    break  # in virtual time nothing can happen any more
                self._wait_until(upcoming)
            if not runtime.closed:
                runtime.step(0)  # runs the signal handlers still pending
        finally:
            self._blocking.pop(runtime, None)
            try:
                self._end(runtime)
            finally:
                done.set()

    def spawn(self, target: Callable[[], None], *, name: str) -> None:
        """One thread steps the bus: `target` runs now, its blocking calls served inline."""
        target()

    def settle(self) -> None:
        self.run_until_idle()

    # -- stalls --------------------------------------------------------------------------
    def stall(self, name: str, until: float | None = None) -> None:
        """The service `name` is not stepped until `until` (None: until `unstall`): it reads
        nothing, its timers wait, what is sent to it queues up to the high-water marks."""
        self.stalled[name] = math.inf if until is None else until

    def unstall(self, name: str | None = None) -> None:
        """Ends the stall of `name` (None: of every service)."""
        if name is None:
            self.stalled.clear()
        else:
            self.stalled.pop(name, None)

    def _is_stalled(self, name: str, now: float) -> bool:
        until = self.stalled.get(name)
        if until is None:
            return False
        if until <= now:
            del self.stalled[name]
            return False
        return True

    # -- stepping ------------------------------------------------------------------------
    def input_for(self, socket: Any) -> None:
        """A message reached `socket`'s queue: its services' pollers may be ready."""
        if len(self.runtimes) <= SCAN_UP_TO:
            return  # a few services: `_runnable` scans them all
        by_poller = self._by_poller
        for poller in socket.pollers:
            runtime = by_poller.get(poller)
            if runtime is not None and runtime not in self._has_input:
                self._mark(runtime)

    def _mark(self, runtime: Any) -> None:
        self._has_input.add(runtime)
        bisect.insort(self._with_input, runtime, key=self._order.__getitem__)

    def _runnable(self) -> list[Any]:
        """Services with input or a due timer, in start order (the ready set's view; on a
        bus of a few services a scan of all is cheaper, and finds the same)."""
        if len(self.runtimes) <= SCAN_UP_TO:
            return self._scan()
        for runtime in self._stepped:  # what they had may be read now
            if runtime in self._has_input and not runtime.poller.has_input():
                self._has_input.discard(runtime)
                self._with_input.remove(runtime)
        self._stepped.clear()
        now = self.clock.monotonic()
        stalled = self.stalled
        has_input = self._has_input
        timers = []
        for runtime in self._timed:
            if runtime not in has_input:
                deadline = runtime.next_deadline()
                if deadline is not None and deadline <= now:
                    timers.append(runtime)
        ready = (self._with_input if not timers else
                 sorted([*self._with_input, *timers], key=self._order.__getitem__))
        found = [runtime for runtime in ready
                 if not (runtime.in_step or runtime.closed or runtime.stop_requested)
                 and not (stalled and self._is_stalled(runtime.name, now))]
        if self.verify:
            scanned = self._scan()
            assert found == scanned, f"ready set {found} != scan {scanned}"
        return found

    def _scan(self) -> list[Any]:
        """Every service looked at: what the ready set must find (`verify`)."""
        now = self.clock.monotonic()
        found = []
        stalled = self.stalled
        for runtime in self.runtimes:
            if runtime.in_step or runtime.closed or runtime.stop_requested:
                continue
            if stalled and self._is_stalled(runtime.name, now):
                continue
            if runtime.poller.has_input():
                found.append(runtime)
                continue
            deadline = runtime.next_deadline()
            if deadline is not None and deadline <= now:
                found.append(runtime)
        return found

    def run_one(self) -> bool:
        """Steps one service that has input or a due timer; False when none has."""
        self.deliveries.deliver_due()
        runnable = self._runnable()
        if not runnable:
            return False
        if len(runnable) == 1:
            runtime = runnable[0]
        elif self.choose is not None:
            runtime = runnable[self.choose(runnable)]
        else:
            runtime = self.random.choice(runnable)
        if len(self.runtimes) > SCAN_UP_TO:
            self._stepped.append(runtime)
        try:
            runtime.step(0)
        except ServiceCrashed:
            if not runtime.closed:
                raise
            # it crashed under its own step (a fault plan's crash): that step is over
        return True

    def next_event(self) -> float | None:
        """When something happens next without outside input: a delivery, a timer, a
        scheduled call or the end of a stall."""
        upcoming = self.deliveries.next_delivery()
        now = self.clock.monotonic()
        stalled = self.stalled
        for runtime in self.runtimes:
            if not (runtime.in_step or runtime.closed or runtime.stop_requested):
                if stalled and self._is_stalled(runtime.name, now):
                    deadline = stalled[runtime.name]
                    deadline = None if deadline == math.inf else deadline
                else:
                    deadline = runtime.next_deadline()
                if deadline is not None and (upcoming is None or deadline < upcoming):
                    upcoming = deadline
        return upcoming

    def run_until_idle(self) -> int:
        """Runs every service until none has input or a due timer; time does not move."""
        steps = 0
        while self.run_one():
            steps += 1
            if steps > SETTLE_LIMIT:
                raise RuntimeError("memory bus: services kept each other busy for "
                                   f"{SETTLE_LIMIT} steps without settling")
        return steps

    def advance(self, seconds: float) -> None:
        """Moves time forward, running every delivery and timer due on the way."""
        target = self.clock.monotonic() + seconds
        while True:
            self.run_until_idle()
            upcoming = self.next_event()
            if upcoming is None or upcoming > target:
                break
            self._wait_until(upcoming)
        self._wait_until(target)
        self.run_until_idle()

    def sleep(self, seconds: float, until: Callable[[], list] | None = None) -> None:
        """`seconds` of virtual time pass for the caller while the bus runs everything due
        meanwhile (a service's `time.sleep` under the test bus), or less when `until()`
        returns something first; 0 runs what is ready now."""
        if seconds < 0:
            raise ValueError("sleep length must be non-negative")
        self.wait_for(until or list, seconds)

    def wait_for(self, ready: Callable[[], list], timeout_s: float | None) -> list:
        """Runs the bus until `ready()` returns something or `timeout_s` pass."""
        deadline = None if timeout_s is None else self.clock.monotonic() + timeout_s
        while True:
            # What is due now comes first: a crash queued by the delivery that made the
            # caller ready ends the caller before it reads it.
            self.deliveries.deliver_due()
            found = ready()
            if found:
                return found
            if self.run_one():
                continue
            upcoming = self.next_event()
            if upcoming is None or (deadline is not None and upcoming > deadline):
                if deadline is not None:
                    self._wait_until(deadline)
                self.deliveries.deliver_due()
                return ready()
            self._wait_until(upcoming)

    def _wait_until(self, t: float | None) -> None:
        # Never asks a virtual clock to go back: a step run inside another wait (a request
        # served inline, with its own deadline) may have moved time past `t` already.
        if t is None or t > self.clock.monotonic():
            self.clock.wait_until(t)
