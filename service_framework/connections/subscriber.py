"""subscriber: exact-topic messages, validated, to a handler; a bad one is logged and dropped."""

from __future__ import annotations

from ..component import Component, describe_topic
from ..logs import get_logger, one_line
from ..transport.base import Frames, Socket
from ..wire.codec import CodecError
from ..wire.envelope import EnvelopeError, decode_request
from .publisher import topic_bytes

log = get_logger()
BATCH = 256
MAX_ORIGINS = 1024  # publishers whose numbering is followed (for counting what was lost)
# A subscriber that has heard nothing on its topic this long after subscribing warns, once:
# most often its publisher sends on another topic (or another address).
SILENCE_WARNING_S = 10.0


class Subscriber(Component):
    silence_warning_s = SILENCE_WARNING_S

    def __init__(self, spec, runtime) -> None:
        super().__init__(spec, runtime)
        self.topic = topic_bytes(spec.creation)  # b"": every message on the socket
        self.is_binder = bool(spec.creation.get("is_binder", False))
        self.received = 0  # messages taken off the socket, good or bad (the harness waits on it)
        self.other_topics = 0  # prefix matches of another topic, dropped
        self.lost = 0  # publications numbered by their publisher that never arrived
        self._last_seq: dict[str, int] = {}
        self._where = f"{self.label}: handler"  # built once: it goes with every message
        self._silence_deadline: float | None = None  # None once heard (or warned)

    def open(self) -> None:
        self.socket = self.open_socket("subscriber")
        self.socket.subscribe(self.topic)
        self.runtime.watch(self.socket, self.on_readable)
        self._silence_deadline = self.runtime.clock.monotonic() + self.silence_warning_s

    def next_deadline(self) -> float | None:
        return self._silence_deadline

    def on_timer(self, now: float) -> None:
        if self._silence_deadline is None or now < self._silence_deadline:
            return
        self._silence_deadline = None  # one warning per subscriber, never repeated
        self.runtime.timer_done(self)
        self.runtime.count("silent_subscribers")
        where, endpoints = (("bound at", [self.bound_endpoint]) if self.is_binder else
                            ("connected to", self.endpoints("subscriber", many=True)))
        others = (f"; {self.other_topics} message(s) of other topics dropped"
                  if self.other_topics else "")
        hint = ("is its publisher at that address, and sending?" if not self.topic else
                "does its publisher send on this topic? (without `topic` it sends on b'')")
        log.warning("%s: nothing heard for %.3gs after subscribing to topic %s (%s %s)%s; %s",
                    self.label, self.silence_warning_s, describe_topic(self.topic), where,
                    ", ".join(endpoints), others, hint)

    def on_readable(self, socket: Socket) -> None:
        for _ in range(BATCH):
            if self.runtime.stop_requested:  # stopping: take no new message
                return
            frames = socket.recv()
            if frames is None:
                return
            self.handle(frames)

    def _count_gap(self, origin: str, seq: int) -> None:
        """Publications lost on the way from `origin` (a full queue drops them silently)."""
        last = self._last_seq.get(origin)
        if last is None and len(self._last_seq) >= MAX_ORIGINS:
            self._last_seq.clear()  # bounded: a peer inventing origins costs nothing
        self._last_seq[origin] = seq
        if last is not None and seq > last + 1:
            missed = seq - last - 1
            self.lost += missed
            self.runtime.count("publications_lost", missed)
            log.warning("%s: %d publication(s) from %s lost on the way (%d so far): a full "
                        "queue drops them, the publisher is not told", self.label, missed,
                        one_line(origin, 64), self.lost)

    def handle(self, frames: Frames) -> None:
        runtime = self.runtime
        self.received += 1
        if len(frames) != 2 or (self.topic and frames[0] != self.topic):
            # ZMQ filters by prefix; "orders" must not receive "orders_eu" (the empty topic
            # takes every message).
            if len(frames) != 2:
                runtime.count("malformed")
                log.warning("%s: dropped a message of %d frame(s), expected [topic, body]",
                            self.label, len(frames))
            else:
                self.other_topics += 1
            return
        if self._silence_deadline is not None:  # heard: no warning, no timer any more
            self._silence_deadline = None
            runtime.timer_done(self)
        try:
            message = decode_request(frames[1], max_bytes=runtime.max_message_bytes)
            workflow_id = message.workflow_id or runtime.new_workflow_id()
            args = self.spec.args.check(message.args)
        except (CodecError, EnvelopeError, ValueError) as error:
            runtime.count("bad_messages")
            log.warning("%s: dropped a bad message: %s", self.label, error)
            return
        if message.seq.__class__ is int and message.origin.__class__ is str:
            self._count_gap(message.origin, message.seq)
        runtime.emit("in", "message", self.name, workflow_id, args=args)
        runtime.run_handler_guarded(self.spec.handler, args, workflow_id, self.name,
                                    where=self._where, counter="handler_errors")
