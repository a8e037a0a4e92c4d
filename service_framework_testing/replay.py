"""`sf_trace`: record a service's messages to a trace, and replay a trace in a test.

    def test_echo_replays(sf_trace):
        session = sf_trace.replay("examples/echo/replyer.py", "tests/traces/echo.jsonl",
                                  mode="none", mask=["return_args.count"])
        assert session.report.compared == 6

Record modes are VCR.py's (see `service_framework.trace.modes.plan`): ``once`` replays an
existing trace and records a missing one; ``new_episodes`` replays what is recorded, then
appends whatever the test does next; ``none`` only replays (a missing trace is an error);
``all`` always records anew. After a replay in ``once``/``none`` mode the service's
outbound connections still answer from the recording, so a request the trace does not
have fails the test ("new interaction") instead of reaching anything live.
"""

from __future__ import annotations

import os
import types
from dataclasses import dataclass
from typing import Any, Iterable

from service_framework.errors import ReplayError
from service_framework.trace import (
    ReplayDriver,
    ReplayReport,
    Trace,
    TraceRecorder,
    plan,
    read_trace,
    started_at,
)

from .cassette import Cassette
from .harness import ServiceHarness

__all__ = ["TraceFixture", "TraceSession"]


@dataclass
class TraceSession:
    """What `TraceFixture.replay` did.

    `mode` is 'record' (the test's interactions go to the trace) or 'replay' (the trace was
    replayed and matched; `report` says what was compared). `harness` is the service, for
    the test to drive further; `recorder` is set while something is being recorded.
    """

    mode: str
    path: str
    harness: ServiceHarness
    report: ReplayReport | None = None
    recorder: TraceRecorder | None = None

    def close(self) -> None:
        """Finishes the recording now (it is also finished with the harness or the test)."""
        if self.recorder is not None:
            self.recorder.close()


class TraceFixture:
    """The `sf_trace` fixture: `record(harness, path)`, `replay(harness_or_spec, path, …)`."""

    def __init__(self, bus: Any, request: Any) -> None:
        self.bus = bus  # the test's `TestBus`
        self._recorders: list[TraceRecorder] = []
        self._refusing: list[tuple[ReplayDriver, int]] = []
        request.addfinalizer(self._finish)

    def record(self, harness: ServiceHarness, path: str | os.PathLike, *,
               append: bool = False) -> TraceRecorder:
        """Records every message of a running harness's service to `path` from now on.

        The trace is complete when the harness closes (or the test ends).
        """
        runtime = harness.runtime
        if runtime is None or runtime.closed:
            raise ReplayError(f"service {harness.name!r} is not running: nothing to record")
        recorder = harness.service.record_to(path, append=append)  # closed when it stops
        self._recorders.append(recorder)
        return recorder

    def read(self, path: str | os.PathLike) -> Trace:
        """The trace at `path`, parsed (header and events)."""
        return read_trace(path)

    def replay(self, harness_or_spec: ServiceHarness | str | os.PathLike | types.ModuleType,
               path: str | os.PathLike, *, mode: str = "once", mask: Iterable[str] | str = (),
               config: Any = None, main_mode: bool | None = None,
               config_from_trace: bool = False) -> TraceSession:
        """Replays the trace at `path` against a service, or records it (see the modes).

        `harness_or_spec` is a harness on this test's bus, or a service (path or module) to
        start on it with `config` (the recorded config only with `config_from_trace`: a
        trace is data, not instructions). Raises `ReplayDivergence` at the first difference.
        """
        path = os.fspath(path)
        action = plan(mode, path)
        if action == "record":
            harness = self._harness(harness_or_spec, config, bool(main_mode))
            return TraceSession("record", path, harness, recorder=self.record(harness, path))
        trace = read_trace(path)
        if not isinstance(harness_or_spec, ServiceHarness) and not self.bus.harnesses:
            # Nothing runs on the test's bus yet: it starts where the recording did, so
            # `datetime.now()` in the service reads what it read then (plus the recorded t).
            seed = trace.header.get("seed")
            self.bus.reset(seed if isinstance(seed, int) else self.bus.bus.seed,
                           start=started_at(trace.header))
        if main_mode is None:
            main_mode = bool(trace.header.get("main_mode", False))
        harness = self._harness(harness_or_spec,
                                trace.config if config_from_trace else config, main_mode)
        if not harness.on_memory:
            raise ReplayError(f"a replay runs on the memory bus; {harness.name!r} runs on "
                              f"{harness.transport.name}")
        driver = ReplayDriver(trace, harness.transport, mask=mask)
        driver.mode_name = mode
        driver.bind(harness.runtime)
        try:
            report = driver.run()
        except BaseException:
            driver.finish(restore=True)
            raise
        finally:
            driver.close()
        append = action == "replay+append"
        driver.finish(restore=append)
        if not append:
            self._refusing.append((driver, len(driver.new_interactions)))
            Cassette(trace, mode).play(harness)  # the body's own interactions: VCR.py's way
        recorder = self.record(harness, path, append=True) if append else None
        return TraceSession("replay", path, harness, report, recorder)

    def _harness(self, harness_or_spec: Any, config: Any, main_mode: bool) -> ServiceHarness:
        if isinstance(harness_or_spec, ServiceHarness):
            return harness_or_spec
        return self.bus.service(harness_or_spec, config=config, main_mode=main_mode)

    def check(self) -> None:
        """Raises the first new interaction a replayed service tried since its replay.

        In modes 'once' and 'none' such a request fails inside the service (its handler
        sees a `ReplayDivergence`); this brings it to the test. It runs at the end of every
        test that uses `sf_trace`.
        """
        for index, (driver, seen) in enumerate(self._refusing):
            if len(driver.new_interactions) > seen:
                self._refusing[index] = (driver, len(driver.new_interactions))
                raise driver.new_interactions[seen]

    def _finish(self) -> None:
        for recorder in self._recorders:
            recorder.close()
        self._recorders.clear()
        try:
            self.check()
        finally:
            self._refusing.clear()
