"""`ReplayDriver`: replays a trace against a service on the memory bus, and says where it
diverges (SPEC §12).

The recording is the script. Walking its events in order, the replay

* feeds the recorded **inputs**: an ``in request`` to a replyer (over a socket, through the
  codec, with the recorded workflow id; recorded as received, so a request the replyer
  refused is fed again and its error reply compared), an ``in message`` to a subscriber,
  an ``in state`` update to an in-state (through a fake out side that speaks the state
  protocol);
* **answers** the service's outbound requests from the recording: per out connection, in
  order, the ``in reply`` / ``in error`` that followed each recorded ``out request``. An
  ``in error`` is raised again: a requester's timeout as that `RequestTimeout`, an error
  reply as the `RemoteError` the requester raised, what an external target raised as
  described in `service_framework.events` (`recorded_error`). No recorded answer at all (a
  trace cut short, or written before timeouts were recorded) is a `RequestTimeout`.
  Publishers are answered too, so nothing leaves the replay;
* compares each recorded **output** (``out request``, ``out message``, ``out state``,
  ``out reply``, ``out error``) with what the service sent, and raises `ReplayDivergence`
  at the first difference, naming the event index, the expected and the actual record.

Compared are direction, kind, name and payload; ``t`` and ``workflow_id`` are identities,
not content. `mask` blanks volatile fields by key path (``"return_args.count"``,
``"args.*.updated_time"``, ``"book:return_args.updated_time"`` for one name only). The
virtual clock follows the recorded ``t`` of each input. In main mode, `main` runs first
and outputs are compared in order per connection/state (main runs beside the loop in
production, so only that order is fixed).

`ReplayDriver` replays onto a runtime already on a `MemoryBus` (the pytest `sf_trace`
fixture); `service_framework.cli.replay` builds the service from its file first (the CLI's
``--replay``). Each recorded event gets a role — an input to feed, an answer to give, an
output to compare, or nothing to do — and `run` walks them in order.
"""

from __future__ import annotations

import copy
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from ..errors import ReplayDivergence, ReplayError, RequestTimeout
from ..events import Event, recorded_error
from ..logs import get_logger
from ..transport.base import SocketKind
from ..transport.memory import MemoryBus
from ..transport.peers import Peers
from ..wire.envelope import encode_request
from .compare import comparable, parse_masks, stream_of
from .reader import Trace
from .state_source import RecordedStateSource

__all__ = ["ReplayDriver", "ReplayReport"]

log = get_logger()

REPLY_TIMEOUT_S = 60.0  # virtual seconds: on the memory bus a reply comes inline

# Roles of trace events in a replay.
FEED_REQUEST, FEED_MESSAGE, FEED_STATE = "feed request", "feed message", "feed state"
ANSWER, OUTPUT, SKIP = "answer", "output", "skip"
_INPUTS = (FEED_REQUEST, FEED_MESSAGE, FEED_STATE)


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


# --------------------------------------------------------------------------- the driver
class ReplayDriver:
    """Replays one trace onto one service runtime on a `MemoryBus`.

    Give it the runtime before the service starts (`watch`, a `Service.runtime_listeners`
    hook) to compare what `init_function` sends too, or a running one (`bind`). Then
    `run()`; then `finish(restore=…)` and `close()`.
    """

    def __init__(self, trace: Trace, bus: Any, *, mask: Iterable[str] | str = (),
                 follow_time: bool = True) -> None:
        if not isinstance(bus, MemoryBus):
            raise ReplayError("a replay runs on the memory bus (a transport that drives "
                              f"its services), not on {getattr(bus, 'name', bus)!r}")
        self.trace = trace
        self.bus = bus
        self.masks = parse_masks(mask)
        self.follow_time = follow_time
        self.runtime: Any = None
        self.start_captured = False
        self.actual: deque[Event] = deque()
        self.report = ReplayReport(trace.path, trace.service, events=len(trace.events))
        self.new_interactions: list[ReplayDivergence] = []
        self.mode_name = "none"  # named in new-interaction errors
        self.roles: list[Any] = []
        self._queues: dict[str, deque[int]] = {}  # out connection -> its out request indexes
        # out request index -> the index of its answer (an index, not the event: a
        # streamed trace reads events again when asked, so a long replay stays small)
        self._answer_of: dict[int, int] = {}
        self._saved_stubs: dict[str, Any] = {}
        self._peers = Peers(bus, "replay")
        self._sources: dict[str, RecordedStateSource] = {}
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
        if self.trace.service and runtime.name != self.trace.service:
            note = (f"the trace was recorded by service {self.trace.service!r}; replaying "
                    f"it against {runtime.name!r}")
            self.report.notes.append(note)
            log.warning("%s", note)
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
                        self._answer_of[match] = index
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
                    self.report.notes.append(  # an older trace: a refused request was not recorded
                        f"event {index}: an {event.dir} {kind} of {name!r} without its recorded "
                        "request cannot be replayed; skipped")
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
            actual = Event(0.0, "out", "request", name, "", {"args": args})
            divergence = ReplayDivergence(
                len(self.trace.events), None, actual,
                f"new interaction: out request {name!r} has no recorded answer (record mode "
                f"{self.mode_name!r} does not record new interactions)", path=self.trace.path,
                records=(None, self._record(actual)))
            self.new_interactions.append(divergence)
            raise divergence
        index = queue.popleft()
        self.report.answered += 1
        answer_index = self._answer_of.get(index)
        answer = None if answer_index is None else self.trace.events[answer_index]
        if answer is None:  # an older trace (timeouts were not recorded) or one cut short
            raise RequestTimeout(f"replay: no reply was recorded for the out request {name!r} "
                                 f"at event {index}")
        if answer.kind == "error":  # raised again as the service saw it (events.py says how)
            raise recorded_error(answer.payload.get("error") or {}, name)
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
                raise self._divergence(index, event, None, role[1])
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

    def _divergence(self, index: int, expected: Event | None, actual: Event | None,
                    reason: str) -> ReplayDivergence:
        records = tuple(None if e is None else self._record(e) for e in (expected, actual))
        return ReplayDivergence(index, expected, actual, reason, path=self.trace.path,
                                line=self.trace.line_of(index), records=records)

    def _expect(self, index: int, event: Event, per_stream: bool) -> None:
        expected = self._record(event)
        found = None
        if per_stream:
            stream = stream_of(event)
            found = next((e for e in self.actual if stream_of(e) == stream), None)
            if found is not None:
                self.actual.remove(found)
        elif self.actual:
            found = self.actual.popleft()
        if found is None:
            raise self._divergence(index, event, None, "the service did not send it")
        if self._record(found) != expected:
            what = (f"the {event.kind} differs" if (found.dir, found.kind, found.name)
                    == (event.dir, event.kind, event.name)
                    else "the service sent something else")
            raise self._divergence(index, event, found, what)
        self.report.compared += 1

    def _nothing_more(self, index: int) -> None:
        if self.actual:
            extra = self.actual[0]
            events = self.trace.events
            expected = events[index] if index < len(events) else None
            where = f"before event {index}" if index < len(events) else "after the last event"
            raise self._divergence(index, expected, extra,
                                   f"the service sent an {extra.dir} {extra.kind} to "
                                   f"{extra.name!r} that the recording does not have {where}")

    # -- feeding inputs -------------------------------------------------------------------
    def _socket(self, key: tuple[str, str], kind: SocketKind, endpoint: str, *,
                bind: bool) -> tuple[Any, Any]:
        try:
            return self._peers.get(key, kind, endpoint, bind=bind)
        except OSError as error:
            raise ReplayError(f"replay cannot reach {key[0]} {key[1]!r}: {error}") from None

    def _feed(self, role: str, event: Event) -> None:
        runtime, name = self.runtime, event.name
        args = event.payload.get("args", {})
        if role == FEED_STATE:
            source = self._sources.get(name)
            if source is None:
                source = RecordedStateSource(self.bus, runtime.in_states[name])
                self._sources[name] = source
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
        self._peers.close()
        for source in self._sources.values():
            source.close()
        self._sources.clear()

