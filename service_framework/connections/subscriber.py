"""subscriber: exact-topic messages, validated, to a handler; a bad one is logged and dropped."""

from __future__ import annotations

from ..component import Component
from ..logs import get_logger
from ..transport.base import Frames, Socket
from ..wire.codec import CodecError
from ..wire.envelope import EnvelopeError, decode_request
from .publisher import topic_bytes

log = get_logger()
BATCH = 256


class Subscriber(Component):
    def __init__(self, spec, runtime) -> None:
        super().__init__(spec, runtime)
        self.topic = topic_bytes(spec.creation, spec.name)
        self.is_binder = bool(spec.creation.get("is_binder", False))
        self.received = 0  # messages taken off the socket, good or bad (the harness waits on it)

    def open(self) -> None:
        self.socket = self.open_socket("subscriber")
        self.socket.subscribe(self.topic)
        self.runtime.watch(self.socket, self.on_readable)

    def on_readable(self, socket: Socket) -> None:
        for _ in range(BATCH):
            if self.runtime.stop_requested:  # stopping: take no new message
                return
            frames = socket.recv()
            if frames is None:
                return
            self.handle(frames)

    def handle(self, frames: Frames) -> None:
        runtime = self.runtime
        self.received += 1
        if len(frames) != 2 or frames[0] != self.topic:
            # ZMQ filters by prefix; "orders" must not receive "orders_eu".
            if len(frames) != 2:
                runtime.count("malformed")
                log.warning("%s: dropped a message of %d frame(s), expected [topic, body]",
                            self.label, len(frames))
            return
        try:
            message = decode_request(frames[1], max_bytes=runtime.max_message_bytes)
            workflow_id = message.workflow_id or runtime.new_workflow_id()
            args = self.spec.args.check(message.args)
        except (CodecError, EnvelopeError, ValueError) as error:
            runtime.count("bad_messages")
            log.warning("%s: dropped a bad message: %s", self.label, error)
            return
        runtime.emit("in", "message", self.name, workflow_id, args=args)
        runtime.run_handler_guarded(self.spec.handler, args, workflow_id,
                                    where=f"{self.label}: handler", counter="handler_errors")
