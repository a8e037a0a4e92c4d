"""The shared path of every out connection: validate, maybe stub, send, validate the reply."""

from __future__ import annotations

import threading
from typing import Any, Callable

from ..component import Component
from ..errors import ServiceStopping
from ..events import error_record

# How long closing waits for a send in flight on another thread (main mode) to end; past
# it the sender closes the sockets itself when its call returns.
CLOSE_WAIT_S = 0.5


class OutboundConnection(Component):
    """An out connection. `send` may be called from the loop thread or from `main`."""

    def __init__(self, spec, runtime) -> None:
        super().__init__(spec, runtime)
        # main mode calls to_send from its own thread while handlers may call it from the
        # loop: a socket is never used by two threads at once.
        self.lock = threading.Lock()
        self.stub: Callable[[dict], dict] | None = None
        self.closed = False

    def send(self, args: Any, workflow_id: str) -> dict:
        args = self.spec.args.check(args)
        runtime = self.runtime
        with self.lock:
            if self.closed:
                raise ServiceStopping(f"{self.label}: the service is stopping; "
                                      "nothing more is sent")
            if self.stub is not None:
                runtime.emit("out", self.event_kind, self.name, workflow_id, args=args)
                try:
                    reply = self.stub(args)
                except Exception as error:  # recorded as the real connection's would be
                    self.record_error(error, workflow_id)
                    raise
                return self.check_reply(reply, workflow_id)
            try:
                return self.deliver(args, workflow_id)
            finally:
                if self.closed:  # closed while this call waited: it owns the sockets
                    self.release_sockets()

    event_kind = "request"

    def close(self) -> None:
        """Closes the sockets, unless a send on another thread still uses them (see send)."""
        self.closed = True
        if self.lock.acquire(timeout=CLOSE_WAIT_S):
            try:
                self.release_sockets()
            finally:
                self.lock.release()

    def release_sockets(self) -> None:
        Component.close(self)

    def deliver(self, args: dict, workflow_id: str) -> dict:
        raise NotImplementedError

    def record_error(self, error: Exception, workflow_id: str) -> None:
        """The ``in error`` event of an exception this connection raises to the service.

        So that a replay raises it again (`errors.error_record` says how it is written).
        """
        self.runtime.emit("in", "error", self.name, workflow_id, error=error_record(error))

    def check_reply(self, reply: Any, workflow_id: str) -> dict:
        returns = self.spec.returns
        if returns is None:
            return {}
        reply = returns.check_return(reply)
        self.runtime.emit("in", "reply", self.name, workflow_id, return_args=reply)
        return reply
