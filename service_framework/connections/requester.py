"""requester: a request with a deadline, Lazy-Pirate retries, and no stuck state.

A DEALER socket, not REQ: after a timeout REQ refuses to send again. On every timeout
the socket is replaced (Lazy Pirate), and each request carries an id so a late answer to
an abandoned request is recognised and dropped.
"""

from __future__ import annotations

import itertools

from ..errors import RemoteError, RequestTimeout
from ..logs import get_logger
from ..wire.codec import CodecError
from ..wire.envelope import EnvelopeError, decode_reply, encode_request
from .outbound import OutboundConnection

log = get_logger()
DEFAULT_TIMEOUT_S = 5.0


class Requester(OutboundConnection):
    def __init__(self, spec, runtime) -> None:
        super().__init__(spec, runtime)
        creation = spec.creation
        self.timeout_s = float(creation.get("timeout_s", DEFAULT_TIMEOUT_S))
        self.retries = int(creation.get("retries", 0))
        self._ids = itertools.count(1)
        self._prefix = runtime.new_workflow_id()[:8]
        self.socket = None
        self.poller = None

    def open(self) -> None:
        self.endpoints("requester", many=True)  # fail early on a missing address
        self._new_socket()

    def _new_socket(self) -> None:
        if self.socket is not None:
            if self.poller is not None:  # a closed socket must not stay in the poller
                self.poller.unregister(self.socket)
            self.close_socket(self.socket)
        if self.poller is None:
            self.poller = self.runtime.transport.poller(owner=f"{self.runtime.name}.{self.name}")
        self.socket = self.open_socket("requester")
        self.poller.register(self.socket)

    def release_sockets(self) -> None:
        super().release_sockets()
        if self.poller is not None:
            self.poller.close()
            self.poller = None
        self.socket = None

    def deliver(self, args: dict, workflow_id: str) -> dict:
        runtime = self.runtime
        rid = f"{self._prefix}-{next(self._ids)}"
        body = encode_request(workflow_id, args, rid, max_bytes=runtime.max_message_bytes)
        runtime.emit("out", "request", self.name, workflow_id, args=args)
        clock = runtime.clock
        attempts = 1 + self.retries
        for attempt in range(1, attempts + 1):
            if self.socket is None:
                self._new_socket()
            socket = self.socket
            deadline = clock.monotonic() + self.timeout_s
            if socket.send([body]):
                while (remaining := deadline - clock.monotonic()) > 0:
                    if not self.poller.poll(remaining):
                        continue
                    frames = socket.recv()
                    if frames is None:
                        continue
                    reply = self._decode(frames)
                    if reply is None or reply.rid != rid:
                        runtime.count("late_replies_dropped")
                        continue  # an answer to a request we gave up on
                    if reply.error is not None:
                        runtime.emit("in", "error", self.name, workflow_id, error=reply.error)
                        raise RemoteError(reply.error["type"], reply.error["message"],
                                          self.name)
                    return self.check_reply(reply.return_args, workflow_id)
            log.warning("%s: no reply within %.3gs (attempt %d of %d)", self.label,
                        self.timeout_s, attempt, attempts)
            self._new_socket()  # Lazy Pirate: a fresh socket, queued requests discarded
        runtime.count("request_timeouts")
        timeout = RequestTimeout(f"{self.label}: no reply from "
                                 f"{', '.join(self.endpoints('requester', many=True))} within "
                                 f"{self.timeout_s:g}s ({attempts} attempt(s))")
        self.record_error(timeout, workflow_id)  # a replay raises it again, message and all
        raise timeout

    def _decode(self, frames):
        try:
            return decode_reply(frames[-1], max_bytes=self.runtime.max_message_bytes)
        except (CodecError, EnvelopeError) as error:
            log.warning("%s: dropped an unreadable reply: %s", self.label, error)
            return None
