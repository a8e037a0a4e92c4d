"""What a replay needs to know before it starts: the record modes, where the clock starts,
and the addresses of a service on a bus of the replay's own.

Record modes follow VCR.py (`RECORD_MODES`); `plan` says what a mode does with a given trace
path. The replay itself is `driver.ReplayDriver` (onto a runtime already on a bus, as the
pytest `sf_trace` fixture does) or `service_framework.cli.replay` (a service from its file,
as ``service_framework --replay`` does).
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

from ..addresses import plan_addresses
from ..errors import ReplayError
from ..transport.memory import DEFAULT_START

__all__ = ["RECORD_MODES", "memory_addresses", "plan", "started_at"]

RECORD_MODES = ("once", "new_episodes", "none", "all")


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


def started_at(header: Mapping) -> datetime:
    """When the recording began (the header's `started`): a replay's virtual clock starts there."""
    try:
        started = datetime.fromisoformat(str(header.get("started")))
    except ValueError:
        return DEFAULT_START
    return started if started.tzinfo else started.replace(tzinfo=timezone.utc)
