"""Seed sweeps: a test body run on many seeds, checked against invariants, and a failure
shrunk to a minimal repro that is kept as traces.

    @pytest.mark.sf_simulate(runs=500, faults="stormy")
    def test_orders_settle(sf_bus):
        ...                                  # services, a workload drawn from sf_bus.random

Each seed decides three things apart, each from a generator of its own: the step order
among ready services (`Schedule`), the fault plan (`plans.DrawnPlan`), and the workload
the test draws from `sf_bus.random`. Under the bus, handlers' `random` module and
`uuid.uuid4()` are seeded per run and time is virtual (`datetime`, `time`); what is not
controlled: other generators (`secrets`, `os.urandom`, a `random.Random()` made without a
seed), threads of the test's own, and real I/O.

A failing seed stops the sweep. Its run is then replayed from its concrete faults and its
schedule (the choices that were not first-in-first-out), and both are shrunk by delta
debugging (Zeller's ddmin): removing any fault left makes the failure go away
(1-minimal), and the schedule keeps the fewest deviations from FIFO that still fail. Delta
debugging rather than Hypothesis's shrinker: a run's choices are made deep inside the bus,
one message at a time, and a fault removed changes which messages exist at all; ddmin only
needs "does this subset still fail", which a rerun answers. The shrunk run is run once more
with every service recording a trace, under `.sf/failures/<test>-seed<N>/`.
"""

from __future__ import annotations

import random as _random
import re
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from service_framework.errors import InvariantViolation, ServiceCrashed
from service_framework.trace import TraceRecorder

from .plans import LEVELS, DrawnPlan, Fault, replay_plan

if TYPE_CHECKING:
    from .bus import TestBus

FAILURES_DIR = Path(".sf") / "failures"
MAX_CANDIDATES = 300  # shrink runs at most this many candidates


class Schedule:
    """Chooses among ready services: at random from its own generator, or as told.

    `deviations` maps a step (counted over choices between several ready services) to the
    index taken; a step not in it takes index 0 (first-in-first-out, in start order).
    `taken` records the deviations of this run.
    """

    def __init__(self, seed: int, deviations: dict[int, int] | None = None) -> None:
        self.random = _random.Random(f"schedule-{seed}") if deviations is None else None
        self.deviations = deviations
        self.taken: dict[int, int] = {}
        self.step = 0

    def __call__(self, ready: list) -> int:
        step, self.step = self.step, self.step + 1
        if self.random is not None:
            index = self.random.randrange(len(ready))
        else:
            index = self.deviations.get(step, 0) % len(ready)
        if index:
            self.taken[step] = index
        return index


@dataclass
class Run:
    """One run of the body: its seed, what failed (None: it passed), what it suffered."""

    seed: int
    error: BaseException | None
    faults: list[Fault]
    deviations: dict[int, int]
    deliveries: list[str] = field(default_factory=list)


@dataclass
class Sweep:
    """What a sweep did; `failure` and `shrunk` are None when every seed passed."""

    name: str
    level: str
    runs: int = 0
    seconds: float = 0.0
    failure: Run | None = None
    shrunk: Run | None = None
    candidates: int = 0
    artifacts: Path | None = None

    def summary(self) -> str:
        rate = self.runs / self.seconds if self.seconds else 0.0
        verdict = f"seed {self.failure.seed} failed" if self.failure else "all passed"
        return (f"sf_simulate {self.name}: {self.runs} seed(s) at level {self.level!r} in "
                f"{self.seconds:.2f}s ({rate:.1f} seeds/s): {verdict}")

    def report(self, repro: str = "") -> str:
        """The whole bug report: what failed, the shrink, the regression test, the traces."""
        if self.failure is None:
            return self.summary()
        failure, shrunk = self.failure, self.shrunk or self.failure
        error = shrunk.error or failure.error
        lines = [self.summary(), f"  {type(error).__name__}: {error}",
                 f"  shrunk: faults {len(failure.faults)} → {len(shrunk.faults)}, schedule "
                 f"deviations {len(failure.deviations)} → {len(shrunk.deviations)}, "
                 f"{self.candidates} candidate runs"]
        if repro:
            lines.append(f"  reproduce: {repro}")
        lines.append(f"  as a regression test (run with --sf-seed={shrunk.seed}):")
        lines.append(f"      sf_bus.follow_schedule({dict(sorted(shrunk.deviations.items()))!r})")
        lines += [f"      {fault}" for fault in shrunk.faults] or ["      (no fault)"]
        if shrunk.deviations:
            lines.append("  schedule: FIFO everywhere except " + ", ".join(
                f"step {step} (ready service {index})"
                for step, index in sorted(shrunk.deviations.items())))
        else:
            lines.append("  schedule: FIFO everywhere")
        if self.artifacts is not None:
            lines.append(f"  traces: {self.artifacts}/")
        return "\n".join(lines)


def run_once(bus: "TestBus", body: Callable[["TestBus"], Any], seed: int, *,
             level: str = "calm", faults: list[Fault] | None = None,
             deviations: dict[int, int] | None = None, record: Path | None = None) -> Run:
    """Runs `body` once on a fresh bus: with a plan drawn at `level`, or with exactly
    `faults` and `deviations` (a replay). Then heals, settles and checks the invariants."""
    bus.reset(seed)
    invariants = bus.invariants
    schedule = Schedule(seed, deviations)
    bus.bus.scheduler.choose = schedule
    drawn = None
    if faults is None:
        drawn = DrawnPlan(level, seed)
        drawn.install(bus.faults, lambda: [harness.name for harness in bus.harnesses])
    else:
        replay_plan(bus.faults, faults)
    invariants.watch_bus(bus.bus)
    recorders: list[TraceRecorder] = []
    bus.runtime_watchers[:] = [invariants.watch_runtime]
    if record is not None:
        record.mkdir(parents=True, exist_ok=True)
        bus.runtime_watchers.append(lambda runtime: recorders.append(TraceRecorder.attach(
            runtime, record / f"{runtime.name}.jsonl", seed=seed,
            append=(record / f"{runtime.name}.jsonl").exists())))
    error = None
    with _seeded_handlers(seed):
        try:
            try:
                body(bus)
            except ServiceCrashed:
                pass  # a fault crashed the service the body was driving: on to the checks
            if drawn is not None and drawn.error is not None:
                raise drawn.error
            _settle(bus)
            _check(bus, drawn.suffered if drawn else faults)
        except Exception as raised:  # the run's verdict; KeyboardInterrupt still stops
            error = raised
    for recorder in recorders:
        recorder.close()
    bus.runtime_watchers.clear()
    return Run(seed, error, list(drawn.suffered if drawn else faults), schedule.taken,
               list(bus.bus.deliveries))


def _settle(bus: "TestBus") -> None:
    """Heals every fault and lets the bus run until in-states can have caught up."""
    bus.faults.heal()
    window = 1.0
    for harness in bus.harnesses:
        runtime = harness.runtime
        if runtime is not None and not runtime.closed:
            for in_state in runtime.in_states.values():
                window = max(window, in_state.silence_s + 2 * in_state.snapshot_timeout_s)
    bus.advance(2 * window)


def _check(bus: "TestBus", faults: list[Fault]) -> None:
    invariants = bus.invariants
    invariants.raise_kept()  # found inside a delivery, where the service would eat it
    invariants.check_user("-", "the run")
    invariants.raise_kept()
    invariants.check_errors(bus.harnesses)
    invariants.check_requests(bus.clock.monotonic())
    invariants.check_states(bus.harnesses)
    invariants.check_links(invariants.links_between(
        {fault.link for fault in faults if fault.action != "drop" and fault.link}))


class _seeded_handlers:
    """Seeds the `random` module and `uuid.uuid4` for one run, and puts them back after."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def __enter__(self) -> None:
        self.state = _random.getstate()
        _random.seed(f"handlers-{self.seed}")
        generator = _random.Random(f"uuid-{self.seed}")
        self.uuid4 = uuid.uuid4
        uuid.uuid4 = lambda: uuid.UUID(int=generator.getrandbits(128), version=4)

    def __exit__(self, *exc: Any) -> None:
        _random.setstate(self.state)
        uuid.uuid4 = self.uuid4


def sweep(bus: "TestBus", body: Callable[["TestBus"], Any], *, runs: int,
          faults: str = "stormy", first_seed: int = 0, name: str = "test",
          check_determinism: bool = False, artifacts: Path | None = FAILURES_DIR,
          shrink: bool = True) -> Sweep:
    """Runs `body` on seeds `first_seed`, `first_seed + 1`, … until one fails or `runs` ran;
    shrinks the failure and writes its traces (unless `artifacts` is None)."""
    if faults not in LEVELS:
        raise ValueError(f"faults must be one of {', '.join(LEVELS)}, got {faults!r}")
    result = Sweep(name, faults)
    started = time.perf_counter()
    for seed in range(first_seed, first_seed + runs):
        run = run_once(bus, body, seed, level=faults)
        result.runs += 1
        if run.error is None and check_determinism:
            again = run_once(bus, body, seed, level=faults)
            run.error = _difference(run, again)
        if run.error is not None:
            result.failure = run
            break
    result.seconds = time.perf_counter() - started
    if result.failure is not None and shrink:
        _shrink(bus, body, result)
        if artifacts is not None:
            folder = artifacts / f"{_slug(name)}-seed{result.failure.seed}"
            for old in folder.glob("*.jsonl"):
                old.unlink()
            shrunk = result.shrunk or result.failure
            run_once(bus, body, shrunk.seed, faults=shrunk.faults,
                     deviations=shrunk.deviations, record=folder)
            result.artifacts = folder
    return result


def _difference(first: Run, second: Run) -> InvariantViolation | None:
    """The first delivery where two runs of one seed differ, or None when none does."""
    for index, (a, b) in enumerate(zip(first.deliveries, second.deliveries, strict=False)):
        if a != b:
            return InvariantViolation(
                f"seed {first.seed} is not deterministic: delivery {index} differs "
                f"(link {_link(a)}): {a[:160]!r} then {b[:160]!r}")
    if len(first.deliveries) != len(second.deliveries):
        index = min(len(first.deliveries), len(second.deliveries))
        extra = (first.deliveries + second.deliveries)[index]
        return InvariantViolation(f"seed {first.seed} is not deterministic: one run made "
                                  f"{len(first.deliveries)} deliveries, the other "
                                  f"{len(second.deliveries)}; the first extra is delivery "
                                  f"{index} (link {_link(extra)})")
    return None


def _link(line: str) -> str:
    return line.split(" ", 2)[1] if " " in line else line


def _shrink(bus: "TestBus", body: Callable, result: Sweep) -> None:
    failure = result.failure
    seed = failure.seed

    def still_fails(faults: list[Fault], deviations: dict[int, int]) -> Run | None:
        if result.candidates >= MAX_CANDIDATES:
            return None
        result.candidates += 1
        run = run_once(bus, body, seed, faults=faults, deviations=deviations)
        return run if run.error is not None and _same_failure(run.error, failure.error) \
            else None

    best = still_fails(failure.faults, failure.deviations)
    if best is None:  # not reproducible from its faults and schedule: report it as it was
        return
    faults = _ddmin(failure.faults, lambda kept: still_fails(kept, failure.deviations))
    best = still_fails(faults, failure.deviations) or best
    items = sorted(failure.deviations.items())
    kept = _ddmin(items, lambda kept: still_fails(faults, dict(kept)))
    best = still_fails(faults, dict(kept)) or best
    best.faults, best.deviations = faults, dict(kept)
    result.shrunk = best


def _same_failure(error: BaseException, original: BaseException) -> bool:
    """The same bug, not another one a candidate run happened to hit: same type, and for an
    invariant the same invariant (its text without numbers)."""
    if type(error) is not type(original):
        return False
    if isinstance(error, InvariantViolation):
        return _shape(str(error)) == _shape(str(original))
    return True


def _shape(message: str) -> str:
    """Which invariant a violation is about: a test's own by its name, a built-in one by
    its words without numbers, names and the delivery it was noticed after."""
    named = re.search(r"invariant '([^']+)'", message)
    if named:
        return named.group(1)
    what = message.split("': ", 1)[-1]
    return re.sub(r"'[^']*'|[-+]?\d[\d.]*", "#", what)[:40]


def _ddmin(items: list, fails: Callable[[list], Any]) -> list:
    """Delta debugging (ddmin): a 1-minimal sublist of `items` for which `fails` holds —
    each chunk alone is tried first, then everything but the chunk."""
    items = list(items)
    if items and fails([]):
        return []
    granularity = 2
    while len(items) >= 2:
        size = -(-len(items) // granularity)
        chunks = [items[i:i + size] for i in range(0, len(items), size)]
        smaller = next((chunk for chunk in chunks if len(chunk) < len(items) and fails(chunk)),
                       None)
        if smaller is not None:
            items, granularity = smaller, 2
            continue
        rest = next((rest for chunk in chunks
                     if (rest := [item for item in items if item not in chunk])
                     and fails(rest)), None)
        if rest is not None:
            items, granularity = rest, max(granularity - 1, 2)
            continue
        if granularity >= len(items):
            break
        granularity = min(len(items), granularity * 2)
    return items


def _slug(name: str) -> str:
    return re.sub(r"[^\w.-]+", "_", name).strip("_")[:120] or "test"
