"""The public `Service` class: load, bind, run, stop — on ZeroMQ or on the memory bus."""

from __future__ import annotations

import os
import signal
import threading
import types
from typing import Any, Mapping

from .codec import DEFAULT_MAX_MESSAGE_BYTES
from .loader import ServiceDefinition, load_service, require_main_mode
from .logs import get_logger, setup_logging
from .runtime import Runtime
from .transport.base import Transport

log = get_logger()
STOP_JOIN_S = 2.0
_running: dict[int, "Service"] = {}
_running_lock = threading.Lock()


def running_services() -> list["Service"]:
    """Services started and not yet stopped in this process (leak checks use this)."""
    with _running_lock:
        return list(_running.values())


class _MainInterrupted(BaseException):
    """Unwinds `main` on a signal (a BaseException: a user's `except Exception` won't eat it)."""


def resolve_transport(transport: str | Transport | None) -> Transport:
    if transport is None or transport == "zmq":
        from .transport.zmq import default_zmq_transport

        return default_zmq_transport()
    if transport == "memory":
        from .transport.memory import default_bus

        return default_bus()
    if isinstance(transport, Transport):
        return transport
    raise ValueError(f"transport must be 'zmq', 'memory' or a Transport, got {transport!r}")


class Service:
    """One service: `run_service()` (non-blocking) or `run_service_blocking()`, then
    `stop_service()`; on ZMQ or on the memory bus."""

    def __init__(self, service_path: str | os.PathLike | None = None,
                 service_module: types.ModuleType | None = None,
                 config: Mapping | str | os.PathLike | None = None,
                 addresses: Mapping | str | os.PathLike | None = None,
                 console_loglevel: str = "INFO", log_path: str | None = None,
                 file_loglevel: str = "INFO", backup_count: int = 24,
                 transport: str | Transport | None = None,
                 record_path: str | os.PathLike | None = None, *,
                 extras: Mapping[str, str] | None = None, drain_s: float = 1.0,
                 max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> None:
        if (service_path is None) == (service_module is None):
            raise ValueError("give exactly one of service_path and service_module")
        setup_logging(console_loglevel, log_path, file_loglevel, int(backup_count))
        definition = load_service(service_path if service_path is not None else service_module,
                                  config=config, extras=extras, addresses=addresses)
        self._setup(definition, transport, record_path, drain_s, max_message_bytes)

    @classmethod
    def from_definition(cls, definition: ServiceDefinition, *,
                        transport: str | Transport | None = None,
                        record_path: str | os.PathLike | None = None,
                        drain_s: float = 1.0,
                        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> "Service":
        """A service from an already loaded definition (the test harness uses this)."""
        service = cls.__new__(cls)
        service._setup(definition, transport, record_path, drain_s, max_message_bytes)
        return service

    def _setup(self, definition: ServiceDefinition, transport: str | Transport | None,
               record_path: str | os.PathLike | None, drain_s: float,
               max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> None:
        self.definition = definition
        self.transport = resolve_transport(transport)
        self.record_path = record_path
        self.drain_s = drain_s
        self.max_message_bytes = int(max_message_bytes)  # bodies over it are refused (§8)
        self.runtime: Runtime | None = None
        self._loop_thread: threading.Thread | None = None
        self._main_thread: threading.Thread | None = None
        self._recorder = None
        self.main_result: Any = None
        self.main_error: BaseException | None = None
        self._stopped = threading.Event()
        self._bus_thread: threading.Thread | None = None  # a blocking run on the memory bus
        # Called with each new Runtime before it opens (the harness attaches its outbox).
        self.runtime_listeners: list = []

    # -- starting -----------------------------------------------------------------------
    def _start_runtime(self) -> Runtime:
        if self.runtime is not None and not self.runtime.closed:
            raise RuntimeError(f"service {self.definition.name!r} is already running")
        runtime = Runtime(self.definition, self.transport, drain_s=self.drain_s,
                          max_message_bytes=self.max_message_bytes)
        for listener in self.runtime_listeners:
            listener(runtime)
        if self.record_path is not None:
            from .trace import TraceRecorder

            self._recorder = TraceRecorder.attach(runtime, self.record_path,
                                                  seed=getattr(self.transport, "seed", None))
        try:
            runtime.open()
        except BaseException:
            if self._recorder is not None:  # binding failed: nothing ran, close the file
                self._recorder.close()
                self._recorder = None
            raise
        self.runtime = runtime
        self._stopped.clear()
        with _running_lock:
            _running[id(self)] = self
        try:
            runtime.init()
        except BaseException:
            self._finish()
            raise
        self.transport.attach(runtime)
        return runtime

    def _loop(self) -> None:
        try:
            self.runtime.run()
        finally:
            self._finish()

    def _finish(self) -> None:
        runtime = self.runtime
        if runtime is None or runtime.closed:
            return
        try:
            runtime.drain()
        finally:
            with _running_lock:
                _running.pop(id(self), None)
            self.transport.detach(runtime)
            runtime.close()
            if self._recorder is not None:
                self._recorder.close()
            self._stopped.set()
            log.info("service %r stopped", runtime.name, extra={"service": runtime.name})

    def run_service(self) -> "Service":
        """Starts serving on a thread of its own (or on the memory bus) and returns."""
        self._start_runtime()
        if not self.transport.drives_runtimes:
            self._loop_thread = threading.Thread(target=self._loop, daemon=True,
                                                 name=f"sf-{self.definition.name}")
            self._loop_thread.start()
        return self

    def run_service_blocking(self) -> None:
        """Serves in this thread until stopped; SIGINT/SIGTERM run the handlers, then stop."""
        runtime = self._start_runtime()
        with _SignalRouting(lambda name, signum, frame: runtime.signal(name, signum, frame),
                            wakeup_fd=getattr(runtime.poller, "wakeup_fd", None)):
            if self.transport.drives_runtimes:
                self._bus_thread = threading.current_thread()
                try:
                    self.transport.run_until_stopped(runtime)
                finally:
                    self._bus_thread = None
                    self._finish()
            else:
                self._loop()

    def run_service_as_main(self) -> "Service":
        """Runs `main` on a thread while inbound connections are served; stops when it returns.

        On the memory bus, which is single-threaded, `main` runs to completion before this
        returns.
        """
        require_main_mode(self.definition)
        self.run_service()
        if self.transport.drives_runtimes:
            self._run_main_catching()
            self.stop_service()
            return self
        self._main_thread = threading.Thread(target=self._main_then_stop, daemon=True,
                                             name=f"sf-{self.definition.name}-main")
        self._main_thread.start()
        return self

    def run_service_as_main_blocking(self) -> Any:
        """Runs `main` in this thread; a signal ends `main`, then its handler runs."""
        require_main_mode(self.definition)
        self.run_service()
        received: list[tuple[str, int]] = []

        def interrupt(name: str, signum: int, frame: Any) -> None:
            # Only unwind here: the user's handler runs once `main` let go of every lock
            # (running it inside the signal handler deadlocked on a to_send in progress).
            if not received:
                received.append((name, signum))
                raise _MainInterrupted(name)

        with _SignalRouting(interrupt):
            try:
                self._run_main_catching()
            except _MainInterrupted:
                pass
            if received:
                self.runtime.run_signal_handler(received[0][0], received[0][1], None)
            self.stop_service()
        return self.main_result

    def _run_main_catching(self) -> None:
        try:
            self.main_result = self.runtime.run_main()
        except _MainInterrupted:
            raise
        except BaseException as error:  # kept for the caller; the CLI exits 1
            self.main_error = error
            log.exception("main raised %s", type(error).__name__)

    def _main_then_stop(self) -> None:
        try:
            self._run_main_catching()
        finally:
            self.runtime.request_stop()

    # -- stopping -----------------------------------------------------------------------
    def stop_service(self) -> None:
        """Stops taking input, finishes the handler in flight, closes sockets; within 2 s."""
        runtime = self.runtime
        if runtime is None or runtime.closed:
            return
        runtime.request_stop()
        bus_thread = self._bus_thread
        if bus_thread is not None and bus_thread is not threading.current_thread():
            self._stopped.wait(STOP_JOIN_S)  # the blocking run finishes the service
            return
        thread = self._loop_thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(STOP_JOIN_S)
            if thread.is_alive():
                log.warning("service %r: a handler is still running after %.1fs",
                            runtime.name, STOP_JOIN_S)
        elif thread is None:
            self._finish()

    @property
    def name(self) -> str:
        return self.definition.name

    def __repr__(self) -> str:
        state = "running" if self.runtime is not None and not self.runtime.closed else "idle"
        return f"<Service {self.name!r} on {self.transport.name} ({state})>"

    def wait_stopped(self, timeout_s: float | None = None) -> bool:
        return self._stopped.wait(timeout_s)

    def __enter__(self) -> "Service":
        return self.run_service()

    def __exit__(self, *exc: Any) -> None:
        self.stop_service()


class _SignalRouting:
    """Routes SIGINT/SIGTERM to a callback while a blocking run lasts (main thread only).

    The previous handlers are restored afterwards and never called: 0.0.12 chained to
    them and crashed on SIG_DFL.
    """

    def __init__(self, callback, wakeup_fd: int | None = None) -> None:
        self.callback = callback
        self.previous: dict[int, Any] = {}
        # A signal that lands just before the loop blocks in poll would run its Python
        # handler only after the poll returns (never, when idle): with a wakeup fd the C
        # handler itself wakes the poll. A dup, so closing the poller never leaves Python
        # writing into a closed (or reused) descriptor.
        self.wakeup_fd = wakeup_fd
        self._wakeup_dup: int | None = None
        self._previous_wakeup = -1

    def __enter__(self) -> "_SignalRouting":
        if threading.current_thread() is threading.main_thread():
            for name in ("SIGINT", "SIGTERM"):
                signum = getattr(signal, name)
                self.previous[signum] = signal.signal(
                    signum, lambda num, frame, name=name: self.callback(name, num, frame))
            if self.wakeup_fd is not None:
                self._wakeup_dup = os.dup(self.wakeup_fd)
                self._previous_wakeup = signal.set_wakeup_fd(self._wakeup_dup,
                                                             warn_on_full_buffer=False)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._wakeup_dup is not None:
            signal.set_wakeup_fd(self._previous_wakeup)
            os.close(self._wakeup_dup)
            self._wakeup_dup = None
        for signum, handler in self.previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
