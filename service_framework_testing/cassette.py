"""A replayed session's inputs, as VCR.py plays a cassette: the test body drives the
service the same way in the recording run and in every replaying one.

In a replay the recording has already been fed to the service and its answers compared
(`ReplayDriver`); the body's own `request(...)` and `publish(...)` that follow are the
interactions the recording holds: each is matched, in order per connection, against the
recorded ones and answered with the recorded reply. One the recording does not have is a
new interaction: under the modes that record none (`once` with a trace, `none`) it fails
with a `ReplayDivergence` naming it. `stub(...)` changes nothing (the recording answers the
service's own requests), and `run_main()` returns None (main already ran in the replay).
"""

from __future__ import annotations

import copy
from collections import deque
from typing import Any

from service_framework.errors import RemoteError, ReplayDivergence, RequestTimeout
from service_framework.trace import Trace

__all__ = ["Cassette"]


class Cassette:
    def __init__(self, trace: Trace, mode: str) -> None:
        self.mode = mode
        self.path = trace.path
        self._size = len(trace.events)
        self.requests: dict[str, deque[tuple[Any, Any]]] = {}
        self.messages: dict[str, deque[Any]] = {}
        answers: dict[tuple[str, str], Any] = {}
        order: list[tuple[str, str, Any]] = []
        for event in trace.events:
            if event.dir == "in" and event.kind == "request":
                order.append((event.name, event.workflow_id, event.payload.get("args")))
            elif event.dir == "in" and event.kind == "message":
                self.messages.setdefault(event.name, deque()).append(event.payload.get("args"))
            elif event.dir == "out" and event.kind in ("reply", "error"):
                answers.setdefault((event.name, event.workflow_id), event)
        for name, workflow_id, args in order:
            self.requests.setdefault(name, deque()).append(
                (args, answers.get((name, workflow_id))))

    def play(self, harness: Any) -> None:
        """The body's interactions with `harness` come from here from now on."""
        harness.request = self.request
        harness.publish = self.publish
        harness.stub = lambda *args, **kwargs: None
        harness.run_main = lambda: None

    def request(self, conn: str, args: Any, **_: Any) -> dict:
        queue = self.requests.get(conn)
        if not queue or queue[0][0] != args:
            raise self._new(f"a request to {conn!r} with args {args!r}")
        _, answer = queue.popleft()
        if answer is None:
            raise RequestTimeout(f"{conn!r}: the recording has no answer to this request")
        if answer.kind == "error":
            error = answer.payload.get("error") or {}
            raise RemoteError(str(error.get("type", "Error")), str(error.get("message", "")),
                              conn)
        return copy.deepcopy(answer.payload.get("return_args"))

    def publish(self, conn: str, args: Any, **_: Any) -> None:
        queue = self.messages.get(conn)
        if not queue or queue[0] != args:
            raise self._new(f"a message to {conn!r} with args {args!r}")
        queue.popleft()

    def _new(self, what: str) -> ReplayDivergence:
        return ReplayDivergence(self._size, None, None,
                                f"new interaction: {what} is not in the recording (record "
                                f"mode {self.mode!r} records no new interaction)",
                                path=self.path)
