"""`time.sleep` in services on the memory bus: virtual time passes, not real time.

freezegun makes `datetime.now()`, `time.time()` and `time.monotonic()` follow the bus's
virtual clock (`TestBus.freeze_time`); it leaves `time.sleep` alone, so a paced producer
would still burst everything at one instant. While a test bus has frozen time, `time.sleep`
is this module's `sleep`: called from the code of a service on that bus (a handler, a hook,
`main`: code a `Runtime` calls) in the thread that drives the bus, it lets that much
virtual time pass — the bus runs everything due meanwhile — and returns at once in real
time. Anything else (the test itself, pytest, Hypothesis, another thread, a service on
ZeroMQ, code named in the real-time list) sleeps for real.

freezegun decides "real time" for `time.*` by the module of the caller and of the four
frames above it; a test body is two frames below pytest's and Hypothesis's own, so with
those modules on the real-time list the test's own `time.monotonic()` would read the wall
clock. While a test bus freezes time only the immediate caller decides (pytest's and
Hypothesis's clocks call `time.*` directly, as the real-time transports do).
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any, Callable

import freezegun.api as _freezegun

from service_framework.runtime import Runtime

__all__ = ["install", "uninstall", "real_sleep", "calling_runtime"]

real_sleep = time.sleep
# (thread that drives the bus, a virtual sleep — False when the caller is not one of its
# services —, modules that keep real time)
_Entry = tuple[threading.Thread, Callable[[float], bool], tuple[str, ...]]
_active: list[_Entry] = []
def sleep(seconds: float) -> None:
    for thread, virtual_sleep, real_time in reversed(_active):  # the innermost bus first
        if (thread is threading.current_thread() and not _called_from(real_time)
                and virtual_sleep(seconds)):
            return
    real_sleep(seconds)


def _called_from(modules: tuple[str, ...]) -> bool:
    """Whether the caller of `sleep` is in a real-time module (only the immediate caller
    decides, as for freezegun's functions while a bus freezes time)."""
    return (sys._getframe(2).f_globals.get("__name__") or "").startswith(modules)


def calling_runtime() -> Any:
    """The innermost runtime whose user code (`Runtime.call`: a handler, a hook, `main`)
    is running in this thread; None outside any."""
    frame = sys._getframe(1)
    code = Runtime.call.__code__
    while frame is not None:
        if frame.f_code is code:
            return frame.f_locals.get("self")
        frame = frame.f_back
    return None


_inspection_limit: list[int] = []  # freezegun's, while a bus has replaced it


def install(virtual_sleep: Callable[[float], bool], real_time: list[str]) -> _Entry:
    """From now on `time.sleep` in this thread's service code calls `virtual_sleep`."""
    entry = (threading.current_thread(), virtual_sleep, tuple(real_time))
    if not _active:
        time.sleep = sleep
        if hasattr(_freezegun, "call_stack_inspection_limit"):
            _inspection_limit.append(_freezegun.call_stack_inspection_limit)
            _freezegun.call_stack_inspection_limit = 1
    _active.append(entry)
    return entry


def uninstall(entry: _Entry) -> None:
    if entry in _active:
        _active.remove(entry)
    if not _active:
        if time.sleep is sleep:
            time.sleep = real_sleep
        if _inspection_limit:
            _freezegun.call_stack_inspection_limit = _inspection_limit.pop()
