"""Traces and replay (SPEC §12): every message in and out of a service, as JSON Lines.

The first line is a header, ``{"trace": 1, "service", "started", "seed"?, …}``; every other
line is one event, ``{"t", "dir", "kind", "name", "workflow_id", "args" | "return_args" |
"error" | …}``, with ``t`` in seconds since recording started (the transport's clock) and
values written through `service_framework.trace.tagged_json`, so that every codec type
reads back exactly. Events are numbered from 0 after the header: that index is what
`ReplayDivergence` and ``service_framework --replay`` name.

`TraceRecorder` listens to a runtime's events and writes them in batches (every
`flush_every` events, after `flush_interval_s`, and on close), always whole lines: a
killed service loses at most the last batch, a stopped one loses nothing, and the file
never ends in half a line. `read_trace` / `TraceReader` parse a trace and name the line of
anything malformed. `ReplayDriver` replays a trace onto a runtime on a memory bus (the
pytest `sf_trace` fixture; `service_framework.cli.replay` for a service from its file).

One module per job:

=================  ========================================================================
`format`           the words the writer and the reader share (version, kinds, keys)
`tagged_json`      values JSON has no type for, as tagged JSON that round-trips exactly
`lines`            one event as one line of JSON, fast (the recorder's hot path)
`recorder`         writing a trace (`TraceRecorder`)
`reader`           reading one (`TraceReader`, `read_trace`, `Trace`)
`compare`          what a replay compares: masks, the compared record
`driver`           the replay's walk: feed inputs, answer outbound requests, compare outputs
`state_source`     the fake out side that feeds recorded state updates to an in-state
`modes`            record modes, where a replay's clock starts, a replay's own addresses
`cli`              ``service_framework-trace show``
=================  ========================================================================

The errors (`TraceFormatError`, `ReplayError`, `ReplayDivergence`) are defined in
`service_framework.errors` and exported here too.
"""

from __future__ import annotations

from ..errors import ReplayDivergence, ReplayError, TraceFormatError
from .compare import MASKED
from .driver import ReplayDriver, ReplayReport
from .format import TRACE_VERSION
from .lines import event_line, event_record
from .modes import RECORD_MODES, memory_addresses, plan, started_at
from .reader import Trace, TraceReader, read_trace
from .recorder import DEFAULT_FLUSH_EVERY, DEFAULT_FLUSH_INTERVAL_S, TraceRecorder

__all__ = [
    # traces
    "TRACE_VERSION", "DEFAULT_FLUSH_EVERY", "DEFAULT_FLUSH_INTERVAL_S", "TraceFormatError",
    "TraceRecorder", "TraceReader", "Trace", "read_trace", "event_record", "event_line",
    # replay
    "RECORD_MODES", "MASKED", "ReplayDivergence", "ReplayDriver", "ReplayError",
    "ReplayReport", "memory_addresses", "plan", "started_at",
]
