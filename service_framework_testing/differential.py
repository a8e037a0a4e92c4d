"""Differential runs: one fault-free scenario, two transports, the same messages per link.

The memory bus claims ZeroMQ's semantics; a differential run checks the claim on a whole
topology. Run the scenario once on the bus and once on real ZeroMQ, record what every
service received, and compare link by link:

    memory, zmq = LinkRecorder(), LinkRecorder()
    memory.attach(sf_service(RELAY, transport="memory", ...))   # a ServiceHarness or Service
    zmq.attach(sf_service(RELAY, transport="zmq", ...))
    ...                                                         # drive both the same way
    assert_same_links(memory.links(), zmq.links())

A link is what one service received on one of its connections or states, of one kind:
`Link(service, name, kind)`, kind one of 'request' (what a replyer got), 'reply' (the
answers a requester got), 'message' (a subscriber's), 'state' (the updates an in-state
applied, with their seq and whether each was a snapshot) and 'error' (by error type).
Its value is the sequence of payloads in the order they arrived. What differs between two
runs by nature is left out: times, workflow ids, epochs, error messages (they name
endpoints). A `mask(link, payload)` given to the recorder may blank more (a timestamp a
service takes from the clock, say).

Between transports only the order within a link is comparable: ZeroMQ keeps it per link
and makes no promise across links, so neither does the comparison. The events come from
`runtime.event_listeners` (what a trace records, too: `add_trace` reads a recorded trace
instead), so the same recorder serves the simulation's runs on the bus with two seeds.
"""

from __future__ import annotations

import copy
import os
import threading
from typing import Any, Callable, Iterable, Mapping, NamedTuple

from service_framework.events import Event
from service_framework.trace import read_trace

__all__ = ["Link", "LinkRecorder", "LinkDivergence", "diff_links", "assert_same_links"]

Mask = Callable[["Link", Any], Any]
Links = Mapping["Link", list]


class Link(NamedTuple):
    """What `service` received on its connection or state `name`, of one `kind`."""

    service: str
    name: str
    kind: str

    def __str__(self) -> str:
        return f"{self.service}.{self.name} ({self.kind})"


class LinkDivergence(AssertionError):
    """Two runs disagree on some link; the message names each link and the first index."""


def payload_of(event: Event) -> Any:
    """What of an incoming event is compared: its arguments, without run-specific ids."""
    payload = event.payload
    if event.kind in ("request", "message"):
        return payload.get("args")
    if event.kind == "reply":
        return payload.get("return_args")
    if event.kind == "state":
        return {"seq": payload.get("seq"), "is_snapshot": payload.get("is_snapshot"),
                "args": payload.get("args")}
    if event.kind == "error":
        error = payload.get("error") or {}
        return {key: error[key] for key in ("type", "remote_type") if key in error}
    return payload


class LinkRecorder:
    """Records, per link, what services received (see the module's docstring).

    Thread-safe: over ZeroMQ each service emits its events on a thread of its own.
    """

    def __init__(self, mask: Mask | None = None) -> None:
        self.mask = mask
        self._links: dict[Link, list] = {}
        self._lock = threading.Lock()

    def attach(self, target: Any, *, name: str | None = None) -> "LinkRecorder":
        """Records from now on what `target` (a `ServiceHarness` or a running `Service`)
        receives, under `name` (default: its service name; give one when two instances of
        a service run at once). A restarted service keeps its listeners."""
        service = name or target.name
        target.runtime.event_listeners.append(lambda event: self.record(service, event))
        return self

    def record(self, service: str, event: Event) -> None:
        """Adds one event of `service`; what it sent (dir 'out') is not a link's input."""
        if event.dir != "in":
            return
        link = Link(service, event.name, event.kind)
        payload = copy.deepcopy(payload_of(event))
        if self.mask is not None:
            payload = self.mask(link, payload)
        with self._lock:
            self._links.setdefault(link, []).append(payload)

    def add_events(self, service: str, events: Iterable[Event]) -> "LinkRecorder":
        for event in events:
            self.record(service, event)
        return self

    def add_trace(self, path: str | os.PathLike, *, name: str | None = None) -> "LinkRecorder":
        """Records the incoming events of a trace file (`Service(record_path=…)`)."""
        trace = read_trace(path)
        return self.add_events(name or trace.service, trace.events)

    def links(self) -> dict[Link, list]:
        """A copy of every link's sequence so far."""
        with self._lock:
            return {link: list(payloads) for link, payloads in self._links.items()}

    def received(self, service: str, name: str, kind: str) -> list:
        """One link's sequence so far (empty when nothing arrived on it)."""
        with self._lock:
            return list(self._links.get(Link(service, name, kind), ()))

    def count(self, service: str, name: str, kind: str) -> int:
        with self._lock:
            return len(self._links.get(Link(service, name, kind), ()))


def _same(a: Any, b: Any) -> bool:
    """Equal, of the same types all the way down (1 is not True, nor 1.0), and written
    the same (a Decimal keeps its exponent, a datetime its offset)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[key], b[key]) for key in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(map(_same, a, b))
    return bool(a == b) and repr(a) == repr(b)


def diff_links(expected: Links, actual: Links, *,
               labels: tuple[str, str] = ("memory", "zmq")) -> list[str]:
    """Where two recordings differ, one line per link (empty when they agree): a link
    only one of them has, or the first index at which the sequences part."""
    first, second = labels
    lines = []
    for link in sorted(set(expected) | set(actual)):
        a, b = expected.get(link), actual.get(link)
        if a is None or b is None:
            only, items = (second, b) if a is None else (first, a)
            lines.append(f"{link}: only on {only} ({len(items)} item(s), first "
                         f"{items[0]!r})")
            continue
        for index, (x, y) in enumerate(zip(a, b, strict=False)):
            if not _same(x, y):
                lines.append(f"{link}: item {index} differs: {first} {x!r}, {second} {y!r}")
                break
        else:
            if len(a) != len(b):
                shorter, longer = (first, second) if len(a) < len(b) else (second, first)
                extra = (b if len(a) < len(b) else a)[min(len(a), len(b))]
                lines.append(f"{link}: {first} has {len(a)} item(s), {second} {len(b)}; "
                             f"{longer} goes on with {extra!r} where {shorter} ends")
    return lines


def assert_same_links(expected: Links, actual: Links, *,
                      labels: tuple[str, str] = ("memory", "zmq")) -> None:
    """Raises `LinkDivergence` naming every link on which the two recordings differ."""
    lines = diff_links(expected, actual, labels=labels)
    if lines:
        raise LinkDivergence(f"{labels[0]} and {labels[1]} differ on {len(lines)} link(s):\n"
                             + "\n".join(f"  {line}" for line in lines))
