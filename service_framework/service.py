"""The public `Service` class: load, bind, run, stop — on ZeroMQ or on the memory bus."""

from __future__ import annotations

import functools
import os
import signal
import threading
import types
from typing import Any, Mapping

from .loader import ServiceDefinition, load_service, reload_service, require_main_mode
from .logs import get_logger, setup_logging
from .runtime import Runtime
from .runtime.metrics import ServiceMetrics
from .trace.recorder import TraceRecorder
from .transport.base import Transport
from .transport.memory import default_bus
from .transport.zmq import default_zmq_transport
from .wire.codec import DEFAULT_MAX_MESSAGE_BYTES

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
        return default_zmq_transport()
    if transport == "memory":
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
                 max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
                 metrics: str | None = None) -> None:
        if (service_path is None) == (service_module is None):
            raise ValueError("give exactly one of service_path and service_module")
        setup_logging(console_loglevel, log_path, file_loglevel, int(backup_count))
        definition = load_service(service_path if service_path is not None else service_module,
                                  config=config, extras=extras, addresses=addresses)
        self._setup(definition, transport, record_path, drain_s, max_message_bytes)
        if metrics is not None:  # Prometheus metrics over HTTP at HOST:PORT (runtime/metrics)
            self.metrics = ServiceMetrics(definition.name, metrics)
            self.runtime_listeners.append(self.metrics.attach)

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
        self._crashed: Runtime | None = None  # the runtime `crash()` ended, until `restart()`
        self._recorders: list = []  # the TraceRecorders this service closes when it stops
        self.main_result: Any = None
        self.main_error: BaseException | None = None
        self._stopped = threading.Event()
        # Called with each new Runtime before it opens (the harness attaches its outbox).
        self.runtime_listeners: list = []
        self.metrics: ServiceMetrics | None = None

    # -- starting -----------------------------------------------------------------------
    def _start_runtime(self, previous: Runtime | None = None) -> Runtime:
        if self.runtime is not None and not self.runtime.closed:
            raise RuntimeError(f"service {self.definition.name!r} is already running")
        runtime = Runtime(self.definition, self.transport, drain_s=self.drain_s,
                          max_message_bytes=self.max_message_bytes)
        if previous is not None:  # a restart: what listened to the old runtime goes on
            runtime.sent_listeners.extend(previous.sent_listeners)
            runtime.event_listeners.extend(previous.event_listeners)
        for listener in self.runtime_listeners:
            listener(runtime)
        if self.record_path is not None and previous is None:
            self._record(runtime, self.record_path)
        try:
            runtime.open()
        except BaseException:
            self._close_outputs()  # binding failed: nothing ran, close the file
            raise
        self.runtime = runtime
        self._stopped.clear()
        with _running_lock:
            _running[id(self)] = self
        try:
            runtime.init()
        except BaseException:
            self._finish(runtime)
            raise
        return runtime

    def _finish(self, runtime: Runtime) -> None:
        """After the last step: drains (unless crashed), closes, and says so."""
        if runtime.closed:
            return
        crashed = runtime is self._crashed
        try:
            if not crashed:
                runtime.drain()
        finally:
            with _running_lock:
                _running.pop(id(self), None)
            runtime.close()
            if not crashed:  # a crashed service's traces (and metrics) go on when it restarts
                self._close_outputs()
            self._stopped.set()
            log.info("service %r %s", runtime.name, "crashed" if crashed else "stopped",
                     extra={"service": runtime.name})

    def _serve(self, runtime: Runtime) -> None:
        self.transport.scheduler.start(runtime, functools.partial(self._finish, runtime))

    def run_service(self) -> "Service":
        """Starts serving (on a thread of its own, or on the memory bus) and returns."""
        self._serve(self._start_runtime())
        return self

    def serve_again(self) -> "Service":
        """Starts a stopped service again in this process: its module and globals kept,
        what listened to the old runtime (outbox, stubs, trace recorders) listening on.
        A main-mode service stops when `main` returns; this is its next run."""
        previous = self.runtime
        if previous is None or not previous.closed:
            raise RuntimeError(f"service {self.name!r} is not stopped: nothing to start again")
        self._serve(self._start_runtime(previous=previous))
        return self

    def run_service_blocking(self) -> None:
        """Serves in this thread until stopped; SIGINT/SIGTERM run the handlers, then stop.

        One signal stops the service; further ones are ignored while it stops, and after
        it, SIGINT and SIGTERM whose disposition was the default stay ignored: the process
        was told to end (see `_SignalRouting`).
        """
        runtime = self._start_runtime()
        with _SignalRouting(lambda name, signum, frame: runtime.signal(name, signum, frame),
                            wakeup_fd=runtime.poller.wakeup_fd):
            self.transport.scheduler.run_blocking(runtime,
                                                  functools.partial(self._finish, runtime))

    def run_service_as_main(self) -> "Service":
        """Runs `main` beside the inbound connections; the service stops when it returns.

        `main` runs on a thread of its own; on the memory bus, where one thread steps every
        service, it runs to completion before this returns.
        """
        require_main_mode(self.definition)
        self.run_service()
        self.transport.scheduler.spawn(self._main_then_stop, name=f"sf-{self.name}-main")
        return self

    def run_service_as_main_blocking(self) -> Any:
        """Runs `main` in this thread; a signal ends `main`, then its handler runs.

        A signal once `main` returned (the service stopping) does not break into the stop;
        only the first signal counts, as for `run_service_blocking`.
        """
        require_main_mode(self.definition)
        self.run_service()
        received: list[tuple[str, int]] = []
        in_main: list[bool] = []  # not empty while `main` runs

        def interrupt(name: str, signum: int, frame: Any) -> None:
            # Only unwind here: the user's handler runs once `main` let go of every lock
            # (running it inside the signal handler deadlocked on a to_send in progress).
            # Only the first signal counts, and only `main` is unwound: once it returned
            # the service is stopping, and a signal must not break into the drain.
            if not received:
                received.append((name, signum))
                if in_main:
                    raise _MainInterrupted(name)

        with _SignalRouting(interrupt):
            try:
                in_main.append(True)
                try:
                    self._run_main_catching()
                finally:
                    in_main.clear()
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
            if isinstance(error, Exception):
                self.runtime.report_error("main", error)

    def _main_then_stop(self) -> None:
        runtime = self.runtime
        try:
            self._run_main_catching()
        finally:
            self.transport.scheduler.stop(runtime, 0.0)  # its loop finishes it; no waiting

    # -- recording (SPEC §12) -----------------------------------------------------------
    def record_to(self, path: str | os.PathLike, *, append: bool = False) -> Any:
        """Records the running service's messages to the trace at `path` from now on.

        `record_path` records a service from its start; this starts recording one that
        runs (the `sf_trace` fixture uses it). `append` continues an existing trace. The
        service writes and closes the trace when it stops; `close()` on the returned
        `TraceRecorder` ends the recording sooner.
        """
        runtime = self.runtime
        if runtime is None or runtime.closed:
            raise RuntimeError(f"service {self.name!r} is not running: nothing to record")
        return self._record(runtime, path, append=append)

    def _record(self, runtime: Runtime, path: str | os.PathLike, *, append: bool = False) -> Any:
        recorder = TraceRecorder.attach(runtime, path, append=append,
                                        seed=self.transport.seed)
        self._recorders.append(recorder)
        return recorder

    def _close_outputs(self) -> None:
        """What the service writes or serves beyond its sockets: traces, metrics."""
        recorders, self._recorders = self._recorders, []
        for recorder in recorders:
            recorder.close()
        if self.metrics is not None:
            self.metrics.close()

    # -- stopping -----------------------------------------------------------------------
    def stop_service(self) -> None:
        """Stops taking input, finishes the handler in flight, closes sockets; within 2 s."""
        runtime = self.runtime
        if runtime is None or runtime.closed:  # never started, stopped, or crashed: what a
            self._close_outputs()  # crash kept open for a restart is not needed now
            return
        if not self.transport.scheduler.stop(runtime, STOP_JOIN_S):
            log.warning("service %r: a handler is still running after %.1fs",
                        runtime.name, STOP_JOIN_S)

    # -- faults -------------------------------------------------------------------------
    def crash(self) -> None:
        """Ends the service abruptly, as a killed process ends: no drain, what its sockets
        held is lost. `restart()` starts it again (fault injection in tests uses both)."""
        runtime = self.runtime
        if runtime is None or runtime.closed:
            raise RuntimeError(f"service {self.name!r} is not running: nothing to crash")
        self._crashed = runtime
        if not self.transport.scheduler.stop(runtime, STOP_JOIN_S):
            log.warning("service %r: a handler is still running after %.1fs",
                        runtime.name, STOP_JOIN_S)

    def restart(self, *, reload: bool = True) -> "Service":
        """Starts a crashed service again, as a new process would: its module is imported
        again (fresh globals, but for the names in its `persistent_globals`, which keep
        their objects: a stand-in for a database) and loaded with the same config and
        addresses; on a fresh runtime states begin a new epoch and `init_function` runs
        again. What listened to the old runtime (the harness's outbox and stubs, trace
        recorders) listens to the new one. `main` does not run again by itself.
        `reload=False` keeps the module and its globals (a restart inside one process)."""
        crashed = self._crashed
        if crashed is None or crashed is not self.runtime or not crashed.closed:
            raise RuntimeError(f"service {self.name!r} did not crash: nothing to restart")
        if reload:
            self.definition = reload_service(self.definition)
        self._serve(self._start_runtime(previous=crashed))
        self._crashed = None
        return self

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

    The previous handlers are never called (0.0.12 chained to them and crashed on
    SIG_DFL). Afterwards they are restored, but for one case: when a signal stopped the
    service, the process was told to end and is ending, so a default disposition
    (SIG_DFL, which kills; Python's SIGINT default, which raises KeyboardInterrupt) is
    replaced by SIG_IGN instead — a second signal (`timeout` sends TERM twice, an
    impatient Ctrl-C) must not turn a clean stop into exit 143 or a traceback (SPEC §4).
    SIG_IGN, not a Python handler: Python resets its handlers to SIG_DFL while the
    interpreter finalizes, SIG_IGN stays until the process is gone. A handler the
    program installed itself is restored as it was.
    """

    def __init__(self, callback, wakeup_fd: int | None = None) -> None:
        self.callback = callback
        self.previous: dict[int, Any] = {}
        self.received: list[str] = []  # the signals routed, by name
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
                    signum, lambda num, frame, name=name: self._route(name, num, frame))
            if self.wakeup_fd is not None:
                self._wakeup_dup = os.dup(self.wakeup_fd)
                self._previous_wakeup = signal.set_wakeup_fd(self._wakeup_dup,
                                                             warn_on_full_buffer=False)
        return self

    def _route(self, name: str, signum: int, frame: Any) -> None:
        self.received.append(name)
        self.callback(name, signum, frame)

    def __exit__(self, *exc: Any) -> None:
        # Handlers first, while the wakeup descriptor is still open for their C side.
        for signum, handler in self.previous.items():
            if handler is None:  # installed outside Python: nothing to restore it with
                handler = signal.SIG_DFL
            if self.received and handler in _ENDING_THE_PROCESS:
                handler = signal.SIG_IGN
            signal.signal(signum, handler)
        if self._wakeup_dup is not None:
            signal.set_wakeup_fd(self._previous_wakeup)
            os.close(self._wakeup_dup)
            self._wakeup_dup = None


# What a signal does by default: kills (SIG_DFL), or raises KeyboardInterrupt (SIGINT).
_ENDING_THE_PROCESS = (signal.SIG_DFL, signal.default_int_handler)
