"""replyer: answers every request, with an error reply when anything goes wrong.

A ROUTER socket, so many requesters are served and every reply goes back to its sender.
The last frame is the body; the frames before it are the route (a REQ peer adds an empty
delimiter, a DEALER does not; both work).
"""

from __future__ import annotations

from ..component import Component
from ..errors import ArgumentError
from ..logs import get_logger
from ..transport.base import Frames, Socket
from ..transport.peer_budget import DEFAULT_PEER_BYTES
from ..wire.codec import CodecError
from ..wire.envelope import EnvelopeError, decode_request, encode_error, encode_reply
from .dedupe import ReplyCache

log = get_logger()
# Requests handled per wake-up before the loop looks at other sockets and timers.
BATCH = 256
# When stopping: requests still on their way are refused (ServiceStopping) until none has
# arrived for this long, so a requester that just got an answer and sent its next request
# is told, not left waiting for a socket that closed under it.
DRAIN_QUIET_S = 0.05


class Replyer(Component):
    last_active = float("-inf")  # when requests last arrived (the loop's clock)

    cache: ReplyCache | None = None
    replies_dropped = 0  # refused by the client's budget (metrics read it)

    def open(self) -> None:
        entries = int(self.spec.creation.get("dedupe", 0))
        if entries > 0:
            self.cache = ReplyCache(entries)
        self.socket = self.open_socket("replyer")
        self.socket.limit_peer_bytes(DEFAULT_PEER_BYTES)  # a client that never reads
        self.runtime.watch(self.socket, self.on_readable)

    def on_readable(self, socket: Socket) -> None:
        self.last_active = self.runtime.clock.monotonic()
        for _ in range(BATCH):
            if self.runtime.stop_requested:  # the rest is for drain(), with its deadline
                return
            frames = socket.recv()
            if frames is None:
                return
            self.handle(socket, frames)

    def handle(self, socket: Socket, frames: Frames) -> None:
        reply = self.answer(frames)
        if reply is not None and not socket.send(frames[:-1] + [reply]):
            self.runtime.count("replies_dropped")
            self.replies_dropped += 1
            log.warning("%s: dropped a reply of %d bytes: its client has not read the ones "
                        "before it (more than %d bytes held for it)", self.label, len(reply),
                        DEFAULT_PEER_BYTES)

    def answer(self, frames: Frames) -> bytes | None:
        """The reply body for one request; None when it cannot be routed back."""
        runtime = self.runtime
        if len(frames) < 2:
            runtime.count("malformed")
            log.warning("%s: dropped a message of %d frame(s) with no route",
                        self.label, len(frames))
            return None
        max_bytes = runtime.max_message_bytes
        try:
            request = decode_request(frames[-1], max_bytes=max_bytes)
        except (CodecError, EnvelopeError) as error:
            runtime.count("bad_requests")
            workflow_id = runtime.new_workflow_id()
            log.warning("%s: bad request: %s", self.label, error,
                        extra={"workflow_id": workflow_id})
            runtime.emit("in", "error", self.name, workflow_id,
                         error={"type": type(error).__name__, "message": str(error)})
            return encode_error(workflow_id, None, type(error).__name__, str(error))
        cache = self.cache
        if cache is not None:
            repeated = cache.get(request.rid, frames[-1])
            if repeated is not None:  # a retry of a request already answered
                runtime.count("replies_from_cache")
                return repeated
        workflow_id = request.workflow_id or runtime.new_workflow_id()
        try:
            # As received, before validation: a refused request is recorded and replayed too.
            runtime.emit("in", "request", self.name, workflow_id, args=request.args)
            args = self.spec.args.check(request.args)
            result = self.spec.returns.check_return(
                runtime.run_handler(self.spec.handler, args, workflow_id, self.name))
            body = encode_reply(workflow_id, request.rid, result, max_bytes=max_bytes)
        except Exception as error:
            runtime.count("error_replies")
            error_type = type(error).__name__
            if isinstance(error, (ArgumentError, CodecError)):
                log.warning("%s: %s: %s", self.label, error_type, error,
                            extra={"workflow_id": workflow_id})
            else:
                log.exception("%s: handler raised %s; answering with an error reply",
                              self.label, error_type, extra={"workflow_id": workflow_id})
            runtime.emit("out", "error", self.name, workflow_id,
                         error={"type": error_type, "message": str(error)})
            return encode_error(workflow_id, request.rid, error_type, str(error))
        runtime.emit("out", "reply", self.name, workflow_id, return_args=result)
        if cache is not None:
            cache.put(request.rid, frames[-1], body)
        return body

    def drain(self, deadline: float) -> None:
        """Stopping (SPEC §16): answers the requests already received, refuses the rest.

        What the socket holds when the loop stopped was received before the stop: it is
        taken off at once, then answered (by the handler until `deadline`, after it with a
        `ServiceStopping` error reply). Requests that arrive afterwards are new: each is
        refused at once, until the socket has been quiet for `DRAIN_QUIET_S` (or
        `deadline` + `DRAIN_QUIET_S` passed), so no requester waits for a closed socket.
        """
        runtime = self.runtime
        socket = self.socket
        clock = runtime.clock
        received = []
        while (frames := socket.recv()) is not None:
            received.append(frames)
        for frames in received:
            if clock.monotonic() < deadline:
                self.handle(socket, frames)
            else:
                self.refuse(socket, frames)
        if clock.virtual:
            return  # virtual time (the memory bus): delivery took none, nothing is on its way
        if not received and clock.monotonic() - self.last_active > DRAIN_QUIET_S:
            return  # idle: no requester is waiting on an answer to send its next request
        poller = runtime.transport.poller(owner=f"{runtime.name}.{self.name}.drain")
        poller.register(socket)
        try:
            end = max(deadline, clock.monotonic()) + DRAIN_QUIET_S
            quiet_until = clock.monotonic() + DRAIN_QUIET_S
            while (now := clock.monotonic()) < min(quiet_until, end):
                if not poller.poll(min(quiet_until, end) - now):
                    continue
                while (frames := socket.recv()) is not None:
                    self.refuse(socket, frames)
                quiet_until = clock.monotonic() + DRAIN_QUIET_S
        finally:
            poller.close()

    def refuse(self, socket: Socket, frames: Frames) -> None:
        """Answers a request with a `ServiceStopping` error reply, without running it."""
        runtime = self.runtime
        runtime.count("refused_stopping")
        if len(frames) < 2:
            runtime.count("malformed")
            return
        try:  # the request's id, or its requester would drop the answer as late
            request = decode_request(frames[-1], max_bytes=runtime.max_message_bytes)
            workflow_id, rid = request.workflow_id, request.rid
        except (CodecError, EnvelopeError):
            workflow_id, rid = "", None
        socket.send(frames[:-1] + [encode_error(
            workflow_id or runtime.new_workflow_id(), rid, "ServiceStopping",
            f"service {runtime.name!r} is stopping")])
