"""One fault model for both transports: rules that lose, copy, delay, reorder or change
messages; partitions; crashes, restarts and stalls of services — now or at a moment of
the run.

    sf_bus.faults.drop(state="book", kind="delta", nth=3)        # the 4th update is lost
    sf_bus.faults.duplicate(state="book", seq={10, 20})         # updates 10 and 20 twice
    sf_bus.faults.partition("gateway", "orders", one_way=True)  # gateway -> orders cut
    sf_bus.faults.crash("booking", after=("inventory", "booking", 1))  # mid-run
    sf_bus.faults.restart("booking", at=5.0)
    sf_bus.faults.stall("audit", 30, at=2.0)                    # a slow consumer

A `Faults` plan is a list of `FaultRule`s (`rules.py`: what a rule matches and hits) and
of scheduled entries (`triggers.py`). `apply(packet)` says what becomes of one message (a
transport-neutral `Packet`: sending and receiving owner, socket kinds, frames). The memory
bus calls it as it transmits (`bus.fault_hook`, which `sf_bus` sets); over ZeroMQ a
`FaultyTransport` (`faulty.py`) calls it as messages are received. The same plan gives the
same faults on both; on the bus, draws come from the bus's seed.

Every action (`drop, duplicate, reorder, delay, tamper, partition, crash, restart, stall,
heal, clear, release`) applies at once, or, given a trigger — `at=` seconds of virtual time,
`after=(from, to, n)` the nth delivery on a link, `on=predicate(packet)` — is scheduled and
fired by the bus, deterministically per seed (triggers need the memory bus). `log` lists
what the plan did, in order, as the calls a test can paste; `describe()` lists the plan in
force and to come the same way.

What a test's fake out side needs reads, for a state `s`: lose the next update,
`drop(state=s, kind='delta', times=1)`; hold the next update back until the one after it
passed, `reorder(state=s, kind='delta', times=1, later=1)`, or until `release()`; send
the next update twice, `duplicate(state=s, kind='delta', times=1)`.
"""

from __future__ import annotations

import math
import random as _random
import threading
from typing import Any, Callable

from service_framework.errors import ArgumentError
from service_framework.service import Service, running_services
from service_framework.transport.base import Frames, Packet

from .rules import (
    KINDS,
    REORDER_HOLD_S,
    Classified,
    FaultRule,
    apply_rules,
    build_rule,
    classify,
    count_down,
)
from .triggers import Planned, Trigger, call_text

__all__ = ["Faults", "FaultRule", "KINDS", "REORDER_HOLD_S", "classify"]

Action = Callable[[float | None], str | None]  # now (None: applied at once) -> a log note


class Faults:
    """A fault plan: `sf_bus.faults`, `FaultyTransport.faults`. Rules stay until `heal()`
    or `clear()` (a partition also until its `seconds=`/`until=`). `transport` is where
    services, the clock and the scheduler are; `random` draws `probability=` hits (the bus
    passes its own, so its seed fixes them); `name` prefixes the calls in `log`."""

    def __init__(self, transport: Any = None, *, random: _random.Random | None = None,
                 seed: int = 0, name: str = "faults") -> None:
        self.transport = transport
        self.random = random if random is not None else _random.Random(seed)
        self.name = name
        self.rules: list[FaultRule] = []
        self.scheduled: list[Planned] = []  # entries not yet fired, in the order made
        self.log: list[str] = []  # what the plan did, in order, as calls
        # link -> [[packets to wait, frames, kind they wait for (None: any)]]
        self._held: dict[tuple, list[list]] = {}
        self._crashed: dict[str, Service] = {}
        self._lock = threading.RLock()  # over ZeroMQ every service's thread applies it

    # -- rules ------------------------------------------------------------------------------
    def drop(self, *, at: float | None = None, after: Any = None, on: Callable | None = None,
             **match: Any) -> FaultRule:
        """The packets hit are lost."""
        return self._rule("drop", (at, after, on), match)

    def duplicate(self, *, later: int = 0, at: float | None = None, after: Any = None,
                  on: Callable | None = None, **match: Any) -> FaultRule:
        """The packets hit arrive twice: at once, or the copy after `later` more packets of
        their kind on the same link (a stale copy)."""
        return self._rule("duplicate", (at, after, on), match,
                          shown={"later": later} if later else {}, later=later)

    def reorder(self, *, later: int | None = None, at: float | None = None, after: Any = None,
                on: Callable | None = None, **match: Any) -> FaultRule:
        """The packets hit are held back: `REORDER_HOLD_S`, so packets sent right after
        overtake them, or until `later` more packets of their kind on the same link have
        passed (heartbeats do not move a held update), or until `release()`/`heal()`."""
        return self._rule("reorder", (at, after, on), match,
                          shown={"later": later} if later is not None else {}, later=later)

    def delay(self, seconds: float, *, at: float | None = None, after: Any = None,
              on: Callable | None = None, **match: Any) -> FaultRule:
        """The packets hit arrive `seconds` later."""
        return self._rule("delay", (at, after, on), match, args=(seconds,),
                          seconds=seconds)

    def tamper(self, replace: Callable[[Frames], Frames], *, at: float | None = None,
               after: Any = None, on: Callable | None = None, **match: Any) -> FaultRule:
        """The packets hit arrive as `replace(frames)`."""
        return self._rule("tamper", (at, after, on), match, args=(replace,),
                          replace=replace)

    def partition(self, a: str, b: str, *, one_way: bool = False,
                  seconds: float | None = None, until: float | None = None,
                  at: float | None = None, after: Any = None,
                  on: Callable | None = None) -> FaultRule:
        """Cuts the link a→b (and b→a unless `one_way`) until `heal()`, or for `seconds`
        from when it starts, or until virtual time `until`."""
        ends = self._ends("partition", seconds, until)
        shown = {"one_way": True} if one_way else {}
        shown.update({key: value for key, value in (("seconds", seconds), ("until", until))
                      if value is not None})
        return self._rule("partition", (at, after, on), {}, args=(a, b),
                          shown=shown, ends=ends, link=(a, b), both_ways=not one_way)

    def _rule(self, action: str, when: tuple, match: dict, *, args: tuple = (),
              shown: dict | None = None, ends: Callable | None = None,
              **options: Any) -> FaultRule:
        rule = build_rule(action, **match, **options)
        rule.call, trigger = self._described(action, args, {**(shown or {}), **match}, *when)

        def install(now: float | None) -> None:
            if ends is not None:
                rule.until = ends(self._now() if now is None else now)
            with self._lock:
                self.rules.append(rule)

        self._act(action, rule.call, trigger, install)
        return rule

    def _ends(self, action: str, seconds: float | None,
              until: float | None) -> Callable[[float], float | None] | None:
        if seconds is None and until is None:
            return None
        if seconds is not None and until is not None:
            raise ValueError(f"{action}: give seconds= or until=, not both")
        self._now()  # a clock is needed
        return lambda now: until if until is not None else now + seconds

    # -- services ---------------------------------------------------------------------------
    def crash(self, service: str, *, at: float | None = None, after: Any = None,
              on: Callable | None = None) -> Planned | None:
        """Ends the service named `service` abruptly (`Service.crash`): no drain, what its
        sockets held is lost; code of it still running is unwound (`ServiceCrashed`). It
        stays down — a state, not a leak — until `restart`."""
        call, trigger = self._described("crash", (service,), {}, at, after, on)
        return self._act("crash", call, trigger, lambda now: self._crash(service, now))

    def _crash(self, service: str, now: float | None) -> str | None:
        for running in running_services():
            if running.transport is self.transport and running.name == service:
                mark = getattr(self.transport, "mark_crashed", None)
                if mark is not None:
                    mark(service)
                running.crash()
                self._crashed[service] = running
                return None
        if now is None:
            raise ArgumentError(f"no running service named {service!r} on this transport")
        return f"skipped: no running service {service!r}"

    def restart(self, service: str, *, at: float | None = None, after: Any = None,
                on: Callable | None = None) -> Planned | None:
        """Starts a crashed service again as a new process would (`Service.restart`: its
        module imported again, a fresh runtime, new epochs)."""
        call, trigger = self._described("restart", (service,), {}, at, after, on)
        return self._act("restart", call, trigger, lambda now: self._restart(service, now))

    def _restart(self, service: str, now: float | None) -> str | None:
        crashed = self._crashed.pop(service, None)
        if crashed is None:
            if now is None:
                raise ArgumentError(f"no crashed service named {service!r} on this transport")
            return f"skipped: {service!r} is not crashed"
        crashed.restart()
        return None

    @property
    def crashed(self) -> list[str]:
        """The services this plan crashed that have not restarted."""
        return sorted(self._crashed)

    def stall(self, service: str, seconds: float | None = None, *, until: float | None = None,
              at: float | None = None, after: Any = None,
              on: Callable | None = None) -> Planned | None:
        """The service stops reading — it is not stepped — for `seconds` from when the stall
        starts (or until virtual time `until`; neither: until `heal()`), as a slow consumer:
        what is sent to it queues up to its high-water marks, and a publisher drops the
        rest for it alone. Needs the memory bus."""
        scheduler = getattr(self.transport, "scheduler", None)
        if getattr(scheduler, "stall", None) is None:
            raise ValueError("stall: needs the memory bus (a scheduler that steps services)")
        ends = self._ends("stall", seconds, until) or (lambda now: None)
        call, trigger = self._described(
            "stall", (service,) if seconds is None else (service, seconds),
            {"until": until} if until is not None else {}, at, after, on)

        def stall(now: float | None) -> None:
            if now is None and service not in {runtime.name for runtime in scheduler.runtimes}:
                raise ArgumentError(f"no service named {service!r} on this bus")
            scheduler.stall(service, ends(self._now() if now is None else now))

        return self._act("stall", call, trigger, stall)

    # -- ending faults ------------------------------------------------------------------------
    def heal(self, *, at: float | None = None, after: Any = None,
             on: Callable | None = None) -> Planned | None:
        """Ends every fault in force: rules (partitions included), stalls and holds; held
        and delayed packets are delivered at once, in order. Crashed services stay down
        (`restart` them); scheduled entries stay scheduled (`clear()` forgets them)."""
        call, trigger = self._described("heal", (), {}, at, after, on)
        return self._act("heal", call, trigger, lambda now: self._heal())

    def _heal(self) -> None:
        with self._lock:
            self.rules = []
            held, self._held = self._held, {}
        unstall = getattr(getattr(self.transport, "scheduler", None), "unstall", None)
        if unstall is not None:
            unstall()
        flush = getattr(self.transport, "flush_delayed", None)
        if flush is not None:
            flush()
        deliver = getattr(self.transport, "deliver_held", None)
        for (src, dst, kind), items in held.items():
            for item in items:
                if deliver is not None:
                    deliver(src, dst, kind, item[1])
                else:  # no transport to deliver through: with the next packet on the link
                    item[0], item[2] = 1, None
                    with self._lock:
                        self._held.setdefault((src, dst, kind), []).append(item)

    def clear(self, *, at: float | None = None, after: Any = None,
              on: Callable | None = None) -> Planned | None:
        """`heal()`, and forgets every scheduled entry: the plan is empty."""
        call, trigger = self._described("clear", (), {}, at, after, on)
        return self._act("clear", call, trigger, lambda now: self._clear())

    def _clear(self) -> None:
        with self._lock:
            pending, self.scheduled = self.scheduled, []
        for entry in pending:
            entry.cancelled = True
            if entry.handle is not None:
                self.transport.cancel(entry.handle)
        if getattr(self.transport, "delivery_hook", None) == self._delivered:
            self.transport.delivery_hook = None
        self._heal()

    def release(self, *, at: float | None = None, after: Any = None,
                on: Callable | None = None) -> Planned | None:
        """Ends every hold: each held packet goes out with the next packet on its link."""
        call, trigger = self._described("release", (), {}, at, after, on)
        return self._act("release", call, trigger, lambda now: self._release())

    def _release(self) -> None:
        with self._lock:
            for held in self._held.values():
                for item in held:
                    item[0], item[2] = 1, None

    # -- the plan as calls --------------------------------------------------------------------
    def describe(self) -> list[str]:
        """The plan as the calls that make it: rules in force, stalls in force (to their
        end), then the entries still to fire, each in the order made."""
        now = self._now() if self._clock() is not None else None
        lines = [rule.call for rule in self.rules
                 if rule.until is None or now is None or now < rule.until]
        stalled = getattr(getattr(self.transport, "scheduler", None), "stalled", {})
        for service, until in stalled.items():
            if now is None or until > now:
                lines.append(call_text(self.name, "stall", (service,),
                                       {} if until == math.inf else {"until": until}))
        return lines + [entry.call for entry in self.scheduled]

    # -- now, or scheduled --------------------------------------------------------------------
    def _described(self, action: str, args: tuple, shown: dict, at: float | None, after: Any,
                   on: Callable | None) -> tuple[str, Trigger | None]:
        """The call as text, and its trigger (None: it applies at once)."""
        trigger = Trigger.make(at, after, on)
        when = {key: value for key, value in (("at", at), ("after", after), ("on", on))
                if value is not None}
        return call_text(self.name, action, args, {**shown, **when}), trigger

    def _act(self, action: str, call: str, trigger: Trigger | None,
             apply: Action) -> Planned | None:
        if trigger is None:
            apply(None)
            self.log.append(call)
            return None
        transport = self.transport
        if getattr(transport, "call_at", None) is None:
            raise ValueError(f"{action}: at=, after= and on= fire in the memory bus's virtual "
                             "time (sf_bus.faults); on this transport, call it when it is due")
        entry = Planned(action, call, trigger, apply)
        with self._lock:
            self.scheduled.append(entry)
        if trigger.on_delivery:
            transport.delivery_hook = self._delivered
        else:
            self._queue(entry, trigger.at)
        return entry

    def _queue(self, entry: Planned, t: float) -> None:
        entry.queued = True
        entry.handle = self.transport.call_at(t, lambda: self._fire(entry))

    def _delivered(self, packet: Packet) -> None:
        """The bus delivered `packet`: queues the entries it triggers for this instant."""
        watching = False
        for entry in list(self.scheduled):
            if entry.queued or not entry.trigger.on_delivery:
                continue
            if entry.trigger.delivered(packet):
                self._queue(entry, self._now())
            else:
                watching = True
        if not watching:
            self.transport.delivery_hook = None

    def _fire(self, entry: Planned) -> None:
        if entry.cancelled:
            return
        now = entry.fired_at = self._now()
        with self._lock:
            if entry in self.scheduled:
                self.scheduled.remove(entry)
        when = "" if entry.trigger.at is not None else f"t={now:.6f}"
        try:
            note = entry.apply(now)
        except BaseException as error:
            self.log.append(f"{entry.call}  # {when}{', ' if when else ''}failed: "
                            f"{type(error).__name__}: {error}")
            raise
        notes = [text for text in (when, note) if text]
        self.log.append(entry.call + (f"  # {', '.join(notes)}" if notes else ""))

    def _clock(self) -> Any:
        return getattr(self.transport, "clock", None)

    def _now(self) -> float:
        clock = self._clock()
        if clock is None:
            raise ValueError("this fault plan has no transport, so no clock to time faults by")
        return clock.monotonic()

    # -- applying -----------------------------------------------------------------------------
    def apply(self, packet: Packet) -> list[tuple[float, Frames]]:
        """The copies of `packet` to deliver, each with its delay; after them, the packets
        held on its link whose wait is over."""
        with self._lock:
            if not self.rules and not self._held:
                return [(0.0, packet.frames)]
            if any(rule.until is not None for rule in self.rules):
                now = self._now()
                self.rules = [rule for rule in self.rules
                              if rule.until is None or now < rule.until]
            key = (packet.src, packet.dst, packet.dst_kind)
            classified = Classified(packet)
            released = count_down(self._held, key, classified) if key in self._held else []
            copies = apply_rules(self.rules, self.random, self._held, packet, key, classified)
            return copies + [(0.0, frames) for frames in released]

