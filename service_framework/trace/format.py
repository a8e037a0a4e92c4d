"""The words of the trace format (SPEC §12) that its writer and its reader share.

Kept apart so that the recorder and the reader cannot drift: both spell the version, the
directions, the kinds and the keys of every event from here. (`TraceFormatError`, what the
reader raises, is in `service_framework.errors` with the other error classes.)
"""

from __future__ import annotations

TRACE_VERSION = 1
DIRECTIONS = ("in", "out")
KINDS = ("request", "reply", "message", "state", "error")
BASE_KEYS = ("t", "dir", "kind", "name", "workflow_id")  # in every event; the rest: payload
