"""Replay a trace against a service on the memory bus, and say where it diverges (SPEC §12).

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
  described in `service_framework.errors` (`recorded_error`). No recorded answer at all (a
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

`replay` runs a service from its file on a bus of its own (the CLI: ``service_framework
--replay TRACE -s svc.py``); `ReplayDriver` replays onto a runtime already on a bus (the
pytest `sf_trace` fixture). Record modes (`RECORD_MODES`) follow VCR.py; `plan` says what
a mode does with a given trace path.

The work is done in private modules, one job each: `_replay_driver` (the walk: feed,
answer, compare), `_replay_compare` (masks, the compared record, `ReplayDivergence`) and
`_replay_state` (the fake out side of an in-state).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Iterable, Mapping

from ._replay_compare import MASKED, ReplayDivergence
from ._replay_driver import ReplayDriver, ReplayError, ReplayReport
from .trace import Trace, TraceFormatError, read_trace
from .wiring import plan_addresses

__all__ = ["RECORD_MODES", "MASKED", "ReplayDriver", "ReplayError", "ReplayReport",
           "memory_addresses", "plan", "replay", "replay_cli"]

RECORD_MODES = ("once", "new_episodes", "none", "all")

for _public in (ReplayDriver, ReplayError, ReplayReport):
    _public.__module__ = __name__  # named (in tracebacks, reprs, pickles) where users find it
del _public


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



def memory_addresses(definition: Any) -> dict:
    """Addresses for every socket of a service, as names on a bus of the replay's own."""
    return plan_addresses(definition, lambda entry: (
        f"inproc://replay/{definition.name}/{entry.section}/{entry.side}/{entry.name}/"
        f"{entry.key}"))


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
