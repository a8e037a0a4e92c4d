"""The two clocks: virtual time for the memory bus in tests, wall time for everything real.

Both give `monotonic()` seconds and `now()` wall time, and `wait_until(t)`: a virtual clock
jumps there at once (never back), a wall clock sleeps (woken early by `wake()`, from any
thread or a signal handler), so the same bus runs a deterministic test or a real
one-process system, and ZeroMQ reads the same wall clock.
"""

from __future__ import annotations

import datetime as _dt
import threading
import time
from typing import Callable

from .base import Clock

DEFAULT_START = _dt.datetime(2030, 1, 1, tzinfo=_dt.timezone.utc)


class VirtualClock(Clock):
    """Time that moves only when the bus moves it; `now()` is `start` plus elapsed time."""

    virtual = True

    def __init__(self, start: _dt.datetime = DEFAULT_START) -> None:
        if start.tzinfo is None:
            start = start.replace(tzinfo=_dt.timezone.utc)
        self.start = start
        self._elapsed = 0.0
        # Called with the new wall time whenever time moves (freezegun follows it).
        self.listeners: list[Callable[[_dt.datetime], None]] = []

    def monotonic(self) -> float:
        return self._elapsed

    def now(self) -> _dt.datetime:
        return self.start + _dt.timedelta(seconds=self._elapsed)

    def set(self, elapsed: float) -> None:
        """Moves time to `elapsed` seconds after the start; ValueError if that is earlier."""
        if elapsed < self._elapsed:
            raise ValueError(f"virtual time never goes back: it is {self._elapsed:.6f}s, "
                             f"asked for {elapsed:.6f}s")
        if elapsed > self._elapsed:
            self._elapsed = elapsed
            if self.listeners:
                now = self.now()
                for listener in self.listeners:
                    listener(now)

    def wait_until(self, t: float | None) -> None:
        if t is not None:
            self.set(t)

    def wake(self) -> None:
        """Nothing waits in virtual time."""


class WallClock(Clock):
    """Real time: `time.monotonic()` and the UTC wall clock; idle means asleep."""

    virtual = False

    def __init__(self) -> None:
        self._woken = threading.Event()

    def monotonic(self) -> float:
        return time.monotonic()

    def now(self) -> _dt.datetime:
        return _dt.datetime.now(_dt.timezone.utc)

    def wait_until(self, t: float | None) -> None:
        """Sleeps until `t` (forever when None) or until `wake()`."""
        timeout = None if t is None else max(0.0, t - time.monotonic())
        self._woken.wait(timeout)
        self._woken.clear()

    def wake(self) -> None:
        self._woken.set()
