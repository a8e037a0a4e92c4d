"""Traces (SPEC §12): every message in and out of a service, as JSON Lines.

The first line is a header, ``{"trace": 1, "service", "started", "seed"?, …}``; every other
line is one event, ``{"t", "dir", "kind", "name", "workflow_id", "args" | "return_args" |
"error" | …}``, with ``t`` in seconds since recording started (the transport's clock) and
values written through `service_framework.tagged_json`, so that every codec type reads
back exactly. Events are numbered from 0 after the header: that index is what
`ReplayDivergence` and ``service_framework --replay`` name.

`TraceRecorder` listens to a runtime's events and writes them in batches (every
`flush_every` events, after `flush_interval_s`, and on close), always whole lines: a
killed service loses at most the last batch, a stopped one loses nothing, and the file
never ends in half a line. `read_trace` / `TraceReader` parse a trace and name the line of
anything malformed.

This module is the public face of traces; the work is done in private modules, one job
each: `_trace_format` (the shared words), `_trace_json` (an event as one line),
`_trace_recorder` (writing), `_trace_reader` (reading) and `_replay_compare` (what a replay
compares, and `ReplayDivergence`).
"""

from __future__ import annotations

from ._replay_compare import ReplayDivergence
from ._trace_format import TRACE_VERSION, TraceFormatError
from ._trace_json import event_line, event_record
from ._trace_reader import Trace, TraceReader, read_trace
from ._trace_recorder import DEFAULT_FLUSH_EVERY, DEFAULT_FLUSH_INTERVAL_S, TraceRecorder

__all__ = ["TRACE_VERSION", "DEFAULT_FLUSH_EVERY", "DEFAULT_FLUSH_INTERVAL_S",
           "TraceFormatError", "ReplayDivergence", "TraceRecorder", "TraceReader", "Trace",
           "read_trace", "event_record", "event_line"]

for _public in (ReplayDivergence, TraceFormatError, TraceRecorder, TraceReader, Trace):
    _public.__module__ = __name__  # named (in tracebacks, reprs, pickles) where users find it
del _public
