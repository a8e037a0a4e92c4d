"""The scheduler of real sockets: every service loops on a thread, blocking in `poll`."""

from __future__ import annotations

import threading
from typing import Callable

from .base import Schedulable, Scheduler


class _Served:
    __slots__ = ("thread", "done")

    def __init__(self, thread: threading.Thread) -> None:
        self.thread = thread
        self.done = threading.Event()  # set once `finish` returned


class ThreadScheduler(Scheduler):
    """One thread per service (`sf-<name>`), or the caller's for a blocking run.

    A step blocks in `poll` until input, a timer or `wake()`; nothing spins while idle.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._served: dict[Schedulable, _Served] = {}

    def start(self, runtime: Schedulable, finish: Callable[[], None] | None = None) -> None:
        thread = threading.Thread(target=self._serve, args=(runtime, finish), daemon=True,
                                  name=f"sf-{runtime.name}")
        with self._lock:
            self._served[runtime] = _Served(thread)
        thread.start()

    def run_blocking(self, runtime: Schedulable, finish: Callable[[], None]) -> None:
        with self._lock:
            self._served[runtime] = _Served(threading.current_thread())
        self._serve(runtime, finish)

    def _serve(self, runtime: Schedulable, finish: Callable[[], None] | None) -> None:
        try:
            runtime.run()
        finally:
            try:
                if finish is not None:
                    finish()
            finally:  # forgotten only once finished: `stop` waits until then
                with self._lock:
                    served = self._served.pop(runtime, None)
                if served is not None:
                    served.done.set()

    def stop(self, runtime: Schedulable, timeout_s: float) -> bool:
        runtime.request_stop()
        with self._lock:
            served = self._served.get(runtime)
        if served is None or served.thread is threading.current_thread():
            return True  # finished already, or stopping from its own step: it ends after it
        return served.done.wait(timeout_s)

    def spawn(self, target: Callable[[], None], *, name: str) -> None:
        threading.Thread(target=target, daemon=True, name=name).start()

    def thread_of(self, runtime: Schedulable) -> threading.Thread | None:
        """The thread serving `runtime`, while it does (for diagnostics and tests)."""
        with self._lock:
            served = self._served.get(runtime)
        return None if served is None else served.thread
