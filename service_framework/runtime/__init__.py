"""The loop of one service: wait for input up to a deadline, dispatch it, run due timers.

`step()` is the unit the memory bus drives; `run()` repeats it on a thread of its own
(or the caller's) for real ZeroMQ. Nothing here touches `zmq` or reads `time.time()`.

The order within one step, on every transport: first the in-states' sockets (their
updates and snapshot replies), then the other readable sockets (inbound requests and
messages, snapshot requests to out-states) in the order the poller returned them, then
due timers, then pending signal handlers. So a request handled in a step sees every
state update that arrived with it, whatever order the poller reports readiness in.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

from ..component import Component
from ..connections import build_connection
from ..errors import ArgumentError
from ..events import Event, Sent, copy_args
from ..loader import ServiceDefinition
from ..logs import get_logger, service_name_var, workflow_id_var
from ..states import build_state
from ..states.view import StatesView
from ..transport.base import Socket, Transport
from ..wire.codec import DEFAULT_MAX_MESSAGE_BYTES

log = get_logger()


class Runtime:
    """Owns a service's components and drives them one step at a time."""

    def __init__(self, definition: ServiceDefinition, transport: Transport, *,
                 max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
                 drain_s: float = 1.0) -> None:
        self.definition = definition
        self.name = definition.name
        self.config = definition.config
        self.transport = transport
        self.clock = transport.clock
        self.max_message_bytes = max_message_bytes
        self.drain_s = drain_s
        self.poller = transport.poller(owner=self.name)
        self.stop_requested = False
        self.in_step = False  # the memory bus never steps a service inside its own step
        self.closed = False
        self.opened = False
        self.counters: dict[str, int] = {}
        self.sent_listeners: list[Callable[[Sent], None]] = []
        self.event_listeners: list[Callable[[Event], None]] = []
        self.error_listeners: list[Callable[[str, BaseException], None]] = []
        self._watchers: dict[Socket, Callable[[Socket], None]] = {}
        self._first: set[Socket] = set()  # handled before the rest of a step (see `watch`)
        self._pending_signals: list[tuple[str, int, Any]] = []
        self._signalled = False
        self.signals_ignored = 0  # signals after the first (see `signal`)
        self._state_values: dict[str, dict] = {}
        self.states = StatesView(self._state_values, self._is_synced)
        self.step_lock = threading.RLock()  # one step at a time, whoever drives
        self.in_connections = {}
        self.out_connections = {}
        for (side, name), spec in definition.connections.items():
            target = self.in_connections if side == "in" else self.out_connections
            target[name] = build_connection(spec, self)
        self.in_states = {}
        self.out_states = {}
        for (side, name), spec in definition.states.items():
            target = self.in_states if side == "in" else self.out_states
            target[name] = build_state(spec, self)
        # Fixed from here on; built once, not per step (the loop reads them every step).
        self._components = (*self.out_states.values(), *self.in_connections.values(),
                            *self.out_connections.values(), *self.in_states.values())
        # Only components that override `next_deadline` can have a timer.
        self._timed = [c for c in self._components
                       if type(c).next_deadline is not Component.next_deadline]
        # Set by a scheduler that asks only runtimes with timers for deadlines (the bus's):
        # told when the last timer is gone for good (`timer_done`).
        self.timers_gone: Callable[["Runtime"], None] | None = None

    # -- components ---------------------------------------------------------------------
    @property
    def components(self) -> tuple:
        return self._components

    def open(self) -> None:
        """Binds and connects every socket; on failure closes what was opened."""
        token = service_name_var.set(self.name)
        try:
            for component in self.components:
                component.open()
        except BaseException:
            self.close()
            raise
        finally:
            service_name_var.reset(token)
        self.opened = True

    def watch(self, socket: Socket, on_readable: Callable[[Socket], None], *,
              first: bool | None = None) -> None:
        """Calls `on_readable(socket)` in each step it is readable. A socket watched
        `first` is handled before the others of a step; by default those of in-states."""
        self._watchers[socket] = on_readable
        if first is None:
            owner = getattr(on_readable, "__self__", None)
            first = any(owner is state for state in self.in_states.values())
        if first:
            self._first.add(socket)
        self.poller.register(socket)

    def unwatch(self, socket: Socket) -> None:
        self._first.discard(socket)
        if self._watchers.pop(socket, None) is not None:
            self.poller.unregister(socket)

    def _later(self, socket: Socket) -> bool:
        """The sort key of a step's readable sockets: False (first) for in-states'."""
        return socket not in self._first

    def set_state_value(self, name: str, value: dict) -> None:
        self._state_values[name] = value

    def _is_synced(self, name: str) -> bool | None:
        if name in self.in_states:
            return self.in_states[name].synced
        return True if name in self.out_states else None

    def count(self, key: str, n: int = 1) -> None:
        self.counters[key] = self.counters.get(key, 0) + n

    # -- the loop -----------------------------------------------------------------------
    @property
    def has_timers(self) -> bool:
        """Whether any component can have a timer (the bus looks at no other's deadline)."""
        return bool(self._timed)

    def timer_done(self, component: Component) -> None:
        """`component` will never have a timer again (a subscriber that has been heard)."""
        if component in self._timed:
            self._timed.remove(component)
            if not self._timed and self.timers_gone is not None:
                self.timers_gone(self)

    def next_deadline(self) -> float | None:
        earliest = None
        for component in self._timed:
            deadline = component.next_deadline()
            if deadline is not None and (earliest is None or deadline < earliest):
                earliest = deadline
        return earliest

    def step(self, timeout_s: float | None) -> int:
        """Waits up to `timeout_s` (bounded by the next timer) and handles what arrived:
        in-states' sockets first, then the rest as polled, then timers (module docstring).

        Returns how many sockets and timers were handled.
        """
        with self.step_lock:
            token = service_name_var.set(self.name)
            self.in_step = True
            try:
                deadline = self.next_deadline()
                if deadline is not None:
                    until_timer = max(0.0, deadline - self.clock.monotonic())
                    timeout_s = until_timer if timeout_s is None else min(timeout_s, until_timer)
                handled = 0
                if not self.stop_requested:
                    ready = self.poller.poll(timeout_s)
                    if self._first and len(ready) > 1:  # in-state updates before requests
                        ready = sorted(ready, key=self._later)  # stable: else as polled
                    for socket in ready:
                        callback = self._watchers.get(socket)
                        if callback is not None:
                            try:
                                callback(socket)
                            except Exception as error:  # one bad input never ends the loop
                                self.count("errors")
                                log.exception("%s: handling input failed; the service goes "
                                              "on", socket.owner)
                                self.report_error(f"input of {socket.owner}", error)
                            handled += 1
                handled += self.run_timers()
                self._deliver_signals()
                return handled
            finally:
                self.in_step = False
                service_name_var.reset(token)

    def run_timers(self) -> int:
        if not self._timed:
            return 0
        now = self.clock.monotonic()
        due = [c for c in self._timed
               if (d := c.next_deadline()) is not None and d <= now]
        for component in due:
            self.guard(component.on_timer, now, where=f"timer of {component.name!r}")
        return len(due)

    def run(self) -> None:
        """Steps until `request_stop()`; blocks in poll while idle (no busy loop)."""
        while not self.stop_requested:
            self.step(None)
        self._deliver_signals()

    def request_stop(self) -> None:
        """Thread- and signal-safe: the loop stops after the current step."""
        self.stop_requested = True
        self.poller.wake()

    def drain(self) -> None:
        """Answers requests already received, then refuses the rest (SPEC §16)."""
        deadline = self.clock.monotonic() + self.drain_s
        for connection in self.in_connections.values():
            drain = getattr(connection, "drain", None)
            if drain is not None:
                self.guard(drain, deadline, where=f"drain of {connection.name!r}")

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for component in reversed(self.components):
            try:
                component.close()
            except Exception:  # closing must reach every socket
                log.exception("closing %r failed", component.name)
        self.poller.close()

    # -- signals ------------------------------------------------------------------------
    def signal(self, name: str, signum: int = 0, frame: Any = None) -> None:
        """Records a signal; its handler runs on the loop, then the service stops.

        Only the first signal counts: the service is stopping from then on, and a further
        SIGINT or SIGTERM (while its handler runs, during the drain, after the close) is
        counted in `signals_ignored` and changes nothing — no second handler run, no
        other way to stop.
        """
        if self._signalled or self.closed:
            self.signals_ignored += 1
            return
        self._signalled = True
        self._pending_signals.append((name, signum, frame))
        self.request_stop()

    def _deliver_signals(self) -> None:
        while self._pending_signals:
            name, signum, frame = self._pending_signals.pop(0)
            self.run_signal_handler(name, signum, frame)

    def run_signal_handler(self, name: str, signum: int, frame: Any) -> None:
        handler = self.definition.signal_handlers.get(name)
        if handler is not None:
            self.guard(handler, signum, frame, self.to_send, self.states, self.config,
                       where=f"{name.lower()}_handler")

    # -- calling user code --------------------------------------------------------------
    def new_workflow_id(self) -> str:
        return self.transport.new_id()

    def call(self, function: Callable, *args: Any, workflow_id: str | None = None) -> Any:
        """Runs user code with its workflow id in the logging context."""
        token = workflow_id_var.set(workflow_id or self.new_workflow_id())
        try:
            return function(*args)
        finally:
            workflow_id_var.reset(token)

    def run_handler(self, handler: Callable, args: dict, workflow_id: str,
                    name: str = "") -> Any:
        """An inbound handler, `handler(args, to_send, states, config)`, in its workflow
        (`name`: the connection or state it handles, for the metrics' timings)."""
        return self.call(handler, args, self.to_send, self.states, self.config,
                         workflow_id=workflow_id)

    def run_handler_guarded(self, handler: Callable, args: dict, workflow_id: str,
                            name: str, *, where: str, counter: str) -> None:
        """A handler nobody waits on (a subscriber's, an `on_update`): a failure is counted
        under `counter` and logged, and the service goes on."""
        try:
            self.run_handler(handler, args, workflow_id, name)
        except Exception as error:
            self.count(counter)
            log.exception("%s raised %s; the service goes on", where, type(error).__name__,
                          extra={"workflow_id": workflow_id})
            self.report_error(where, error)

    def guard(self, function: Callable, *args: Any, where: str) -> Any:
        """Runs framework or user code whose failure must not stop the loop."""
        try:
            return function(*args)
        except Exception as error:
            self.count("errors")
            log.exception("%s failed; the service goes on", where)
            self.report_error(where, error)
            return None

    def report_error(self, where: str, error: BaseException) -> None:
        """Tells `error_listeners` that code the loop guards raised and was swallowed (a
        subscriber's handler, an `on_update`, a timer, a signal handler, `main`): the
        service went on, but a test should hear of it."""
        for listener in self.error_listeners:
            listener(where, error)

    def init(self) -> None:
        if self.definition.init_function is not None:
            self.call(self.definition.init_function, self.to_send, self.states, self.config)

    def run_main(self) -> Any:
        definition = self.definition
        if definition.main_takes_states:
            return self.call(definition.main, self.to_send, self.states, self.config)
        return self.call(definition.main, self.to_send, self.config)

    # -- output -------------------------------------------------------------------------
    def to_send(self, output_type: str, output_name: str, args: Any = None) -> dict:
        """What handlers call to send: returns the reply of a request, else {}."""
        if output_type == "connection":
            component = self.out_connections.get(output_name)
        elif output_type == "state":
            component = self.out_states.get(output_name)
        else:
            raise ArgumentError(f"to_send: output_type must be 'connection' or 'state', "
                                f"got {output_type!r}")
        if component is None:
            known = sorted(self.out_connections if output_type == "connection"
                           else self.out_states)
            raise ArgumentError(f"to_send: {output_name!r} is not an out {output_type} of "
                                f"service {self.name!r} (out {output_type}s: "
                                f"{', '.join(known) or 'none'})")
        workflow_id = workflow_id_var.get()
        if workflow_id == "-":
            workflow_id = self.new_workflow_id()
        reply = component.send({} if args is None else args, workflow_id)
        if self.sent_listeners:
            # A copy: a handler that reuses one dict for several sends must not rewrite
            # what the outbox shows was sent.
            record = Sent(output_type, output_name, copy_args(args), reply if reply else None)
            for listener in self.sent_listeners:
                listener(record)
        return reply

    def emit(self, dir: str, kind: str, name: str, workflow_id: str, **payload: Any) -> None:
        if self.event_listeners:
            event = Event(self.clock.monotonic(), dir, kind, name, workflow_id, payload)
            for listener in self.event_listeners:
                listener(event)
