"""A replayed service reads the replay's clock: `datetime.now()`, `time.time()`,
`time.monotonic()` and `time.sleep()` in its module follow the memory bus's virtual time,
which starts at the recording's start (`modes.started_at`).

The pytest plugin does this with freezegun for every service on a test bus; the CLI's
`--replay` has no test harness (and the framework no freezegun), so it swaps the names a
service module imported — the `time` and `datetime` modules, the `datetime` class — for
ones that read the bus, and puts them back afterwards. Only the service module's own
globals change: code it calls in other modules keeps real time (said in the docs).
"""

from __future__ import annotations

import datetime as _dt
import time as _time
import types
from collections.abc import Callable
from typing import Any

__all__ = ["follow_clock"]


class _DatetimeMeta(type):
    def __instancecheck__(cls, value: Any) -> bool:  # real datetimes are ours too
        return isinstance(value, _dt.datetime)

    def __subclasscheck__(cls, subclass: type) -> bool:
        return issubclass(subclass, _dt.datetime)


def _virtual_datetime(now: Callable[[], _dt.datetime]) -> type:
    """A `datetime` class whose now(), utcnow() and today() read `now()` (aware, UTC)."""

    class datetime(_dt.datetime, metaclass=_DatetimeMeta):  # noqa: N801 - stands for it
        @classmethod
        def now(cls, tz: _dt.tzinfo | None = None) -> _dt.datetime:  # type: ignore[override]
            moment = now()
            return moment.astimezone(tz) if tz is not None else \
                moment.astimezone().replace(tzinfo=None)

        @classmethod
        def utcnow(cls) -> _dt.datetime:  # type: ignore[override]
            return now().replace(tzinfo=None)

        @classmethod
        def today(cls) -> _dt.datetime:  # type: ignore[override]
            return cls.now()

    return datetime


def follow_clock(module: types.ModuleType, clock: Any,
                 sleep: Callable[[float], None]) -> Callable[[], None]:
    """Makes `module`'s time names read `clock` (now(), monotonic()); `sleep` lets virtual
    time pass. Returns the function that puts the real ones back."""
    fake_datetime = _virtual_datetime(clock.now)
    fake_time = types.ModuleType("time", _time.__doc__)
    fake_time.__dict__.update({name: getattr(_time, name) for name in dir(_time)
                               if not name.startswith("__")})
    fake_time.time = lambda: clock.now().timestamp()  # type: ignore[attr-defined]
    fake_time.time_ns = lambda: int(clock.now().timestamp() * 1e9)  # type: ignore[attr-defined]
    fake_time.monotonic = clock.monotonic  # type: ignore[attr-defined]
    fake_time.perf_counter = clock.monotonic  # type: ignore[attr-defined]
    fake_time.sleep = sleep  # type: ignore[attr-defined]
    fake_datetime_module = types.ModuleType("datetime", _dt.__doc__)
    fake_datetime_module.__dict__.update({name: getattr(_dt, name) for name in dir(_dt)
                                          if not name.startswith("__")})
    fake_datetime_module.datetime = fake_datetime  # type: ignore[attr-defined]
    swaps = {id(real): fake for real, fake in (
        (_time, fake_time), (_dt, fake_datetime_module), (_dt.datetime, fake_datetime),
        (_time.time, fake_time.time), (_time.monotonic, clock.monotonic),
        (_time.sleep, sleep))}
    keep = (_time, _dt, _dt.datetime, _time.time, _time.monotonic, _time.sleep)
    saved = {}
    for name, value in list(vars(module).items()):
        replacement = swaps.get(id(value))
        if replacement is not None and any(value is real for real in keep):
            saved[name] = value
            setattr(module, name, replacement)

    def restore() -> None:
        for name, value in saved.items():
            setattr(module, name, value)

    return restore
