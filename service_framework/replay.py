"""Replay a trace against a service on the memory bus, and say where it diverges (SPEC §12).

The recording is the script. Walking its events in order, the replay

* feeds the recorded **inputs**: an ``in request`` to a replyer (over a socket, through the
  codec, with the recorded workflow id), an ``in message`` to a subscriber, an ``in state``
  update to an in-state (through a fake out side that speaks the state protocol);
* **answers** the service's outbound requests from the recording: per out connection, in
  order, the ``in reply`` / ``in error`` that followed each recorded ``out request`` (no
  recorded answer means the request had timed out: `RequestTimeout`). Publishers are
  answered too, so nothing leaves the replay;
* compares each recorded **output** (``out request``, ``out message``, ``out state``,
  ``out reply``, ``out error``) with what the service sent, and raises `ReplayDivergence`
  at the first difference, naming the event index, the expected and the actual record.

Compared are direction, kind, name and payload; ``t`` and ``workflow_id`` are identities,
not content. `mask` blanks volatile fields by key path (``"return_args.count"``,
``"args.*.updated_time"``, ``"book:return_args.updated_time"`` for one name only). The
virtual clock follows the recorded ``t`` of each input. In main mode, `main` runs first
and outputs are compared in order per connection/state (main runs beside the loop in
production, so only that order is fixed).

`replay` runs a service from its file on a bus of its own (the CLI: ``service_framework
--replay TRACE -s svc.py``); `ReplayDriver` replays onto a runtime already on a bus (the
pytest `sf_trace` fixture). Record modes (`RECORD_MODES`) follow VCR.py; `plan` says what
a mode does with a given trace path.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import sys
import types
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from .envelope import encode_request
from .errors import RemoteError, RequestTimeout, ServiceFrameworkError
from .logs import get_logger
from .runtime import Event
from .trace import ReplayDivergence, Trace, event_record, read_trace
from .transport.base import SocketKind

log = get_logger()

RECORD_MODES = ("once", "new_episodes", "none", "all")
MASKED = "<masked>"
REPLY_TIMEOUT_S = 60.0  # virtual seconds: on the memory bus a reply comes inline

# Roles of trace events in a replay.
FEED_REQUEST, FEED_MESSAGE, FEED_STATE = "feed request", "feed message", "feed state"
ANSWER, OUTPUT, SKIP = "answer", "output", "skip"
_INPUTS = (FEED_REQUEST, FEED_MESSAGE, FEED_STATE)


class ReplayError(ServiceFrameworkError, ValueError):
    """A replay cannot start: no trace in record mode 'none', not on the memory bus, …"""


def plan(mode: str, path: str | os.PathLike) -> str:
    """What record `mode` does with the trace at `path`, as VCR.py defines the modes.

    'record' (write a new trace), 'replay' (replay it, write nothing) or 'replay+append'
    (replay it, then append what happens next). `once`: replay if the trace exists, else
    record; `new_episodes`: replay what is recorded, record new interactions after it;
    `none`: replay only, a missing trace is an error; `all`: always record anew.
    """
    if mode not in RECORD_MODES:
        raise ValueError(f"record mode must be one of {', '.join(RECORD_MODES)}, got {mode!r}")
    exists = Path(path).is_file() and Path(path).stat().st_size > 0
    if mode == "all" or (not exists and mode != "none"):
        return "record"
    if not exists:
        raise ReplayError(f"{os.fspath(path)}: no trace to replay, and record mode 'none' "
                          "never records")
    return "replay+append" if mode == "new_episodes" else "replay"


@dataclass
class ReplayReport:
    """What a replay that matched did."""

    path: str | None
    service: str
    events: int = 0
    fed: int = 0
    compared: int = 0
    answered: int = 0
    notes: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        text = (f"replay OK: {self.path or 'trace'} ({self.events} events) against "
                f"{self.service!r}: {self.fed} input(s) fed, {self.compared} output(s) "
                f"matched, {self.answered} outbound request(s) answered from the recording")
        return "\n".join([text, *(f"  note: {note}" for note in self.notes)])


# --------------------------------------------------------------------------- comparing
def _mask_value(value: Any, parts: list[str]) -> Any:
    if not parts:
        return MASKED
    head, rest = parts[0], parts[1:]
    if isinstance(value, dict):
        return {key: _mask_value(item, rest) if head == "*" or str(key) == head else item
                for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        items = [_mask_value(item, rest) if head in ("*", str(i)) else item
                 for i, item in enumerate(value)]
        return tuple(items) if isinstance(value, tuple) else items
    return value


def _parse_masks(mask: Iterable[str] | str) -> list[tuple[str | None, list[str]]]:
    if isinstance(mask, str):
        mask = [mask]
    parsed = []
    for text in mask:
        name, colon, path = str(text).rpartition(":")
        if not path:
            raise ValueError(f"mask {text!r}: expected a key path like 'return_args.count'")
        parsed.append((name if colon else None, path.split(".")))
    return parsed


def comparable(event: Event, masks: list[tuple[str | None, list[str]]]) -> dict:
    """The record compared in a replay: no `t` or `workflow_id`, masked fields blanked."""
    payload = event.payload
    for name, parts in masks:
        if name is None or name == event.name:
            payload = _mask_value(payload, parts)
    record = event_record(event._replace(payload=payload))
    del record["t"], record["workflow_id"]
    return record


def _stream(event: Event) -> tuple[str, str]:
    kind = "reply" if event.kind == "error" else event.kind  # a reply or an error reply
    return event.dir, f"{kind} {event.name}"


# --------------------------------------------------------------------------- in-states
class _StateSource:
    """A fake out side of one in-state: the real `OutState` on a runtime of its own.

    Bound at the first recorded update of the state (so the in-state's pending snapshot
    request is answered with that update's value, as it was when recording), it then
    publishes each recorded update with its recorded seq, heartbeats and serves snapshots.
    """

    def __init__(self, bus: Any, in_state: Any) -> None:
        self.bus = bus
        self.in_state = in_state
        self.runtime: Any = None

    def _open(self) -> Any:
        from .loader import ServiceDefinition
        from .runtime import Runtime

        spec = self.in_state.spec
        out_type = "full_update_out" if spec.kind == "full" else "delta_update_out"
        creation = {"topic": self.in_state.topic,
                    "heartbeat_s": float(spec.creation.get("heartbeat_s", 1.0))}
        out_spec = dataclasses.replace(spec, side="out", type=out_type, creation=creation,
                                       on_update=None)
        addresses = {"states": {"out": {spec.name: {
            "publisher": self.in_state.endpoints("subscriber", many=True)[0],
            "replyer": self.in_state.endpoints("requester", many=True)[0]}}}}
        definition = ServiceDefinition(
            name=f"replay-source-{spec.name}", module=types.ModuleType("replay_source"),
            config={}, addresses=addresses, connections={}, states={("out", spec.name): out_spec})
        return Runtime(definition, self.bus)

    def feed(self, event: Event) -> None:
        from .states.merge import copy_value, replace_value

        args = event.payload.get("args") or {}
        is_snapshot = bool(event.payload.get("is_snapshot", False))
        seq = event.payload.get("seq")
        if self.runtime is None:
            self.runtime = runtime = self._open()
            out = runtime.out_states[self.in_state.name]
            seq = seq if isinstance(seq, int) and seq >= 0 else 1
            if is_snapshot:  # served as the answer to the in-state's snapshot request
                replace_value(out.core.value, copy_value(args))
                out.core.seq = seq
            else:
                out.core.seq = seq - 1
            runtime.open()
            self.bus.attach(runtime)
            if not is_snapshot:
                self._publish(out, args, False, event.workflow_id)
            return
        out = self.runtime.out_states[self.in_state.name]
        seq = seq if isinstance(seq, int) and seq > 0 else out.core.seq + 1
        if seq <= out.core.seq:
            out.core.restart()  # the recorded out side started again: a new epoch
        out.core.seq = seq - 1
        self._publish(out, args, is_snapshot, event.workflow_id)

    @staticmethod
    def _publish(out: Any, args: dict, is_snapshot: bool, workflow_id: str) -> None:
        with out.lock:
            body = out.core.update(args, is_snapshot, workflow_id or None)
            out.publisher.send([out.topic, body])

    def close(self) -> None:
        if self.runtime is not None:
            self.bus.detach(self.runtime)
            self.runtime.close()
            self.runtime = None


# --------------------------------------------------------------------------- the driver
class ReplayDriver:
    """Replays one trace onto one service runtime on a `MemoryBus`.

    Give it the runtime before the service starts (`watch`, a `Service.runtime_listeners`
    hook) to compare what `init_function` sends too, or a running one (`bind`). Then
    `run()`; then `finish(restore=…)` and `close()`.
    """

    def __init__(self, trace: Trace, bus: Any, *, mask: Iterable[str] | str = (),
                 follow_time: bool = True) -> None:
        if not getattr(bus, "drives_runtimes", False):
            raise ReplayError("a replay runs on the memory bus (a transport that drives "
                              f"its services), not on {getattr(bus, 'name', bus)!r}")
        self.trace = trace
        self.bus = bus
        self.masks = _parse_masks(mask)
        self.follow_time = follow_time
        self.runtime: Any = None
        self.start_captured = False
        self.actual: deque[Event] = deque()
        self.report = ReplayReport(trace.path, trace.service, events=len(trace.events))
        self.new_interactions: list[ReplayDivergence] = []
        self.mode_name = "none"  # named in new-interaction errors
        self.roles: list[Any] = []
        self._queues: dict[str, deque[int]] = {}  # out connection -> its out request indexes
        self._answer_of: dict[int, Event] = {}
        self._saved_stubs: dict[str, Any] = {}
        self._sockets: dict[tuple[str, str], tuple[Any, Any]] = {}
        self._sources: dict[str, _StateSource] = {}
        self._rids = 0

    # -- attaching ------------------------------------------------------------------------
    def watch(self, runtime: Any) -> None:
        """Attaches before the service starts: what it sends while starting is compared."""
        self.start_captured = True
        self.bind(runtime)

    def bind(self, runtime: Any) -> None:
        if self.runtime is not None:
            raise ReplayError("a ReplayDriver replays onto one runtime")
        self.runtime = runtime
        self._classify()
        runtime.event_listeners.append(self._on_event)
        for name, connection in runtime.out_connections.items():
            self._saved_stubs[name] = connection.stub
            connection.stub = self._stub(name)

    def _on_event(self, event: Event) -> None:
        if event.dir == "out":
            self.actual.append(event)

    def _stub(self, name: str) -> Callable[[dict], Any]:
        def answer(args: dict) -> Any:
            return self._answer(name, args)

        return answer

    # -- the script -----------------------------------------------------------------------
    def _classify(self) -> None:
        runtime = self.runtime
        ins, outs = runtime.in_connections, runtime.out_connections
        open_requests: dict[tuple[str, str], int] = {}
        unanswered: dict[str, list[int]] = {}
        events = self.trace.events
        for index, event in enumerate(events):
            kind, name, key = event.kind, event.name, (event.name, event.workflow_id)
            in_type = ins[name].spec.type if name in ins else None
            role: Any = None
            if event.dir == "in":
                if kind == "request" and in_type == "replyer":
                    role = FEED_REQUEST
                    open_requests[key] = open_requests.get(key, 0) + 1
                elif kind == "message" and in_type == "subscriber":
                    role = FEED_MESSAGE
                elif kind == "state" and name in runtime.in_states:
                    role = FEED_STATE
                elif kind in ("reply", "error") and name in outs:
                    role = ANSWER
                    waiting = unanswered.get(name, [])
                    match = next((i for i in waiting if events[i].workflow_id
                                  == event.workflow_id), waiting[0] if waiting else None)
                    if match is not None:
                        waiting.remove(match)
                        self._answer_of[match] = event
                elif kind == "error" and in_type == "replyer":
                    role = SKIP
                    self.report.notes.append(f"event {index}: a request to {name!r} that could "
                                             "not be decoded cannot be fed again; skipped")
            elif kind in ("request", "message") and name in outs:
                role = OUTPUT
                if kind == "request":
                    unanswered.setdefault(name, []).append(index)
                    self._queues.setdefault(name, deque()).append(index)
            elif kind == "state" and name in runtime.out_states:
                role = OUTPUT
            elif kind in ("reply", "error") and in_type == "replyer":
                if open_requests.get(key):
                    open_requests[key] -= 1
                    role = OUTPUT
                else:
                    role = SKIP
                    self.report.notes.append(
                        f"event {index}: an {event.dir} {kind} of {name!r} without its request "
                        "(refused before the handler ran) cannot be replayed; skipped")
            if role is None:
                role = ("unknown", f"service {runtime.name!r} has no "
                        f"{'in' if event.dir == 'in' else 'out'} connection or state "
                        f"{name!r} that {'takes' if event.dir == 'in' else 'sends'} a {kind}")
            self.roles.append(role)

    def _skip_start(self) -> None:
        """The trace has the service's start, the replay came too late to see it."""
        first_input = next((i for i, role in enumerate(self.roles) if role in _INPUTS),
                           len(self.roles))
        skipped = [i for i in range(first_input) if self.roles[i] == OUTPUT]
        for index in skipped:
            self.roles[index] = SKIP
            for queue in self._queues.values():
                if index in queue:
                    queue.remove(index)
        if skipped:
            self.report.notes.append(f"{len(skipped)} output(s) of the service's start (events "
                                     f"{skipped[0]}..{skipped[-1]}) not compared: the service "
                                     "was already running")

    # -- answering outbound requests ------------------------------------------------------
    def _answer(self, name: str, args: dict) -> Any:
        connection = self.runtime.out_connections[name]
        if connection.spec.type == "publisher":
            return {}
        queue = self._queues.get(name)
        if not queue:
            actual = {"dir": "out", "kind": "request", "name": name,
                      "args": event_record(Event(0.0, "out", "request", name, "",
                                                 {"args": args}))["args"]}
            divergence = ReplayDivergence(
                len(self.trace.events), None, actual,
                f"new interaction: out request {name!r} has no recorded answer (record mode "
                f"{self.mode_name!r} does not record new interactions)", path=self.trace.path)
            self.new_interactions.append(divergence)
            raise divergence
        index = queue.popleft()
        self.report.answered += 1
        answer = self._answer_of.get(index)
        if answer is None:
            raise RequestTimeout(f"replay: no reply was recorded for the out request {name!r} "
                                 f"at event {index}")
        if answer.kind == "error":
            error = answer.payload.get("error") or {}
            error_type, message = str(error.get("type", "Error")), str(error.get("message", ""))
            if error_type == "RequestTimeout":
                raise RequestTimeout(message)
            raise RemoteError(error_type, message, name)
        return copy.deepcopy(answer.payload.get("return_args"))  # the service may change it

    # -- the walk -------------------------------------------------------------------------
    def run(self) -> ReplayReport:
        """Feeds, answers, compares; raises `ReplayDivergence` at the first difference."""
        runtime, bus, events = self.runtime, self.bus, self.trace.events
        if runtime is None:
            raise ReplayError("bind() or watch() a runtime before run()")
        bus.run_until_idle()
        per_stream = bool(runtime.definition.main_mode)
        includes_start = self.trace.header.get("includes_start", True)
        if includes_start and not self.start_captured and not per_stream:
            # (in main mode what `main` sends cannot be told from what the start sent)
            self._skip_start()
        elif not includes_start and self.start_captured and self.actual:
            self.report.notes.append(f"{len(self.actual)} output(s) of the service's start "
                                     "not compared: the trace began after it")
            self.actual.clear()
        if per_stream:
            self._run_main()
        t0 = bus.clock.monotonic()
        for index, event in enumerate(events):
            role = self.roles[index]
            if role == OUTPUT:
                self._expect(index, event, per_stream)
            elif role in _INPUTS:
                if not per_stream:
                    self._nothing_more(index)
                delay = t0 + event.t - bus.clock.monotonic()
                if self.follow_time and delay > 0:
                    bus.advance(delay)
                self._feed(role, event)
                self.report.fed += 1
            elif isinstance(role, tuple):
                raise self._divergence(index, self._record(event), None, role[1])
        bus.run_until_idle()
        self._nothing_more(len(events))
        return self.report

    def _run_main(self) -> None:
        try:
            self.runtime.run_main()
        except Exception as error:  # the outputs it did not send will be reported
            self.report.notes.append(f"main raised {type(error).__name__}: {error}")
        self.bus.run_until_idle()

    def _record(self, event: Event) -> dict:
        return comparable(event, self.masks)

    def _divergence(self, index: int, expected: dict | None, actual: dict | None,
                    reason: str) -> ReplayDivergence:
        return ReplayDivergence(index, expected, actual, reason, path=self.trace.path,
                                line=self.trace.line_of(index))

    def _expect(self, index: int, event: Event, per_stream: bool) -> None:
        expected = self._record(event)
        found = None
        if per_stream:
            stream = _stream(event)
            found = next((e for e in self.actual if _stream(e) == stream), None)
            if found is not None:
                self.actual.remove(found)
        elif self.actual:
            found = self.actual.popleft()
        if found is None:
            raise self._divergence(index, expected, None, "the service did not send it")
        actual = self._record(found)
        if actual != expected:
            what = (f"the {event.kind} differs" if (actual["dir"], actual["kind"], actual["name"])
                    == (expected["dir"], expected["kind"], expected["name"])
                    else "the service sent something else")
            raise self._divergence(index, expected, actual, what)
        self.report.compared += 1

    def _nothing_more(self, index: int) -> None:
        if self.actual:
            extra = self.actual[0]
            events = self.trace.events
            expected = self._record(events[index]) if index < len(events) else None
            where = f"before event {index}" if index < len(events) else "after the last event"
            raise self._divergence(index, expected, self._record(extra),
                                   f"the service sent an {extra.dir} {extra.kind} to "
                                   f"{extra.name!r} that the recording does not have {where}")

    # -- feeding inputs -------------------------------------------------------------------
    def _socket(self, key: tuple[str, str], kind: SocketKind, endpoint: str, *,
                bind: bool) -> tuple[Any, Any]:
        if key not in self._sockets:
            socket = self.bus.socket(kind, owner=f"replay.{key[1]}")
            try:
                socket.bind(endpoint) if bind else socket.connect(endpoint)
            except OSError as error:
                socket.close()
                raise ReplayError(f"replay cannot reach {key[0]} {key[1]!r}: {error}") from None
            poller = self.bus.poller(owner=f"replay.{key[1]}")
            poller.register(socket)
            self._sockets[key] = (socket, poller)
        return self._sockets[key]

    def _feed(self, role: str, event: Event) -> None:
        runtime, name = self.runtime, event.name
        args = event.payload.get("args", {})
        if role == FEED_STATE:
            source = self._sources.get(name)
            if source is None:
                source = self._sources[name] = _StateSource(self.bus, runtime.in_states[name])
            source.feed(event)
            self.bus.run_until_idle()
            return
        connection = runtime.in_connections[name]
        body = encode_request(event.workflow_id, args, None if role == FEED_MESSAGE else
                              self._next_rid(), max_bytes=runtime.max_message_bytes)
        if role == FEED_MESSAGE:
            if connection.is_binder:
                endpoint, bind = connection.bound_endpoint, False
            else:
                endpoint, bind = connection.endpoints("subscriber", many=True)[0], True
            socket, _ = self._socket(("subscriber", name), SocketKind.XPUB, endpoint, bind=bind)
            socket.send([connection.topic, body])
            self.bus.run_until_idle()
            return
        socket, poller = self._socket(("replyer", name), SocketKind.DEALER,
                                      connection.bound_endpoint, bind=False)
        socket.send([body])
        if poller.poll(REPLY_TIMEOUT_S):  # the answer itself is compared as an event
            socket.recv()
        self.bus.run_until_idle()

    def _next_rid(self) -> str:
        self._rids += 1
        return f"replay-{self._rids}"

    # -- the end --------------------------------------------------------------------------
    def finish(self, *, restore: bool = True) -> None:
        """Stops comparing; `restore` puts back the stubs the service had before the replay.

        Without it the replay's answers stay: a new outbound request then raises a
        `ReplayDivergence` ("new interaction"), as record modes 'once' and 'none' want.
        """
        runtime = self.runtime
        if runtime is None:
            return
        if self._on_event in runtime.event_listeners:
            runtime.event_listeners.remove(self._on_event)
        for name, stub in list(self._saved_stubs.items()):
            connection = runtime.out_connections.get(name)
            if connection is not None and (restore or connection.spec.type == "publisher"):
                connection.stub = stub  # publishing needs no answer: never refused
                del self._saved_stubs[name]

    def close(self) -> None:
        """Closes the replay's own sockets and fake state sources."""
        for socket, poller in self._sockets.values():
            poller.close()
            socket.close()
        self._sockets.clear()
        for source in self._sources.values():
            source.close()
        self._sources.clear()


# --------------------------------------------------------------------------- entry points
def memory_addresses(definition: Any) -> dict:
    """Addresses for every socket of a service, as names on a bus of the replay's own."""
    from .wiring import socket_plan

    addresses: dict = {}
    for entry in socket_plan(definition):
        endpoint = (f"inproc://replay/{definition.name}/{entry.section}/{entry.side}/"
                    f"{entry.name}/{entry.key}")
        slot = addresses.setdefault(entry.section, {}).setdefault(entry.side, {})
        slot.setdefault(entry.name, {})[entry.key] = [endpoint] if entry.many else endpoint
    return addresses


def _started(header: Mapping) -> Any:
    from datetime import datetime, timezone

    from .transport.memory import DEFAULT_START

    try:
        started = datetime.fromisoformat(str(header.get("started")))
    except ValueError:
        return DEFAULT_START
    return started if started.tzinfo else started.replace(tzinfo=timezone.utc)


def replay(trace: Trace | str | os.PathLike, service: Any, *,
           config: Mapping | str | os.PathLike | None = None,
           extras: Mapping[str, str] | None = None,
           addresses: Mapping | str | os.PathLike | None = None,
           main_mode: bool | None = None, mask: Iterable[str] | str = (),
           follow_time: bool = True) -> ReplayReport:
    """Replays `trace` against `service` (a path or module) on a memory bus of its own.

    Without `config` or `extras`, the config recorded in the trace's header is used; main
    mode too comes from the header unless given. Without `addresses` every socket gets a
    name on the replay's bus; given ones are used without their `security` section.
    Raises `ReplayDivergence` at the first difference; returns a `ReplayReport` when
    everything matched.
    """
    from .loader import load_service
    from .service import Service
    from .transport.memory import MemoryBus

    if not isinstance(trace, Trace):
        trace = read_trace(trace)
    header = trace.header
    if config is None and not extras:
        config = trace.config
    if main_mode is None:
        main_mode = bool(header.get("main_mode", False))
    if addresses is not None:  # a replay runs in-process: CurveZMQ has nothing to guard
        from .addresses import load_addresses

        addresses = {key: value for key, value in load_addresses(addresses).items()
                     if key != "security"}
    seed = header.get("seed")
    bus = MemoryBus(seed=seed if isinstance(seed, int) else 0, start=_started(header))
    definition = load_service(service, config=config, extras=extras, addresses=addresses,
                              main_mode=main_mode, addresses_for=memory_addresses)
    driver = ReplayDriver(trace, bus, mask=mask, follow_time=follow_time)
    instance = Service.from_definition(definition, transport=bus)
    instance.runtime_listeners.append(driver.watch)
    instance.run_service()
    try:
        return driver.run()
    finally:
        driver.finish()
        driver.close()
        instance.stop_service()


def replay_cli(options: Any, extras: Mapping[str, str]) -> int:
    """``service_framework --replay TRACE -s svc.py``: 0 when it matches, 1 at a divergence."""
    from .logs import setup_logging
    from .trace import TraceFormatError

    setup_logging(options.console_loglevel, options.log_path, options.file_loglevel,
                  int(options.backup_count))
    try:
        trace = read_trace(options.replay_path)
    except TraceFormatError as error:
        print(f"service_framework: error: {error}", file=sys.stderr)
        return 2
    try:
        report = replay(trace, options.service_path, config=options.config_path,
                        extras=extras or None, addresses=options.addresses_path,
                        main_mode=True if options.main_mode else None,
                        mask=getattr(options, "mask", None) or ())
    except ReplayDivergence as divergence:
        print(divergence, flush=True)
        return 1
    except ReplayError as error:
        print(f"service_framework: error: {error}", file=sys.stderr)
        return 2
    print(report, flush=True)
    return 0
