"""publisher: `[topic, body]` on an XPUB socket.

XPUB rather than PUB because it shows subscriptions arriving: with `min_subscribers` the
first send waits for them instead of sleeping after bind (the slow-joiner problem).

High-water-mark drops happen per subscriber, silently, as on a ZMQ PUB socket (on both
transports): a subscriber whose queue is full loses its copy and the others get theirs.
The publisher cannot count them (libzmq exposes no per-subscriber drop count); they are
seen where they land — a state's in side counts a seq gap (`state_out_of_sync`) and
recovers with a snapshot; a subscriber can find gaps if its messages carry numbers.
"""

from __future__ import annotations

from ..component import SubscriptionCounter, topic_bytes
from ..logs import get_logger
from ..wire.envelope import encode_request
from .outbound import OutboundConnection

log = get_logger()
DEFAULT_WAIT_FOR_SUBSCRIBERS_S = 5.0


class Publisher(OutboundConnection):
    event_kind = "message"

    def __init__(self, spec, runtime) -> None:
        super().__init__(spec, runtime)
        creation = spec.creation
        self.topic = topic_bytes(creation)
        self.min_subscribers = int(creation.get("min_subscribers", 0))
        self.wait_for_subscribers_s = float(
            creation.get("wait_for_subscribers_s", DEFAULT_WAIT_FOR_SUBSCRIBERS_S))
        if "wait_after_creation_s" in creation:
            # 0.0.12 slept this long after creating the socket so that subscribers could
            # join; here the first send waits up to that long, and no longer than until
            # `min_subscribers` (at least one) have subscribed.
            self.min_subscribers = max(self.min_subscribers, 1)
            self.wait_for_subscribers_s = float(creation["wait_after_creation_s"])
        self.is_x_pub = bool(creation.get("is_x_pub", False))
        self.subscriptions = SubscriptionCounter()
        self.waited = self.min_subscribers <= 0

    def open(self) -> None:
        self.socket = self.open_socket("publisher", hwm=int(self.spec.creation.get("hwm", 1000)))

    def wait_for_subscribers(self) -> bool:
        """Blocks (up to `wait_for_subscribers_s`) until `min_subscribers` have subscribed."""
        runtime = self.runtime
        clock = runtime.clock
        deadline = clock.monotonic() + self.wait_for_subscribers_s
        poller = runtime.transport.poller(owner=f"{runtime.name}.{self.name}")
        poller.register(self.socket)
        try:
            while True:
                self.subscriptions.read(self.socket)
                if self.subscriptions.matching(self.topic) >= self.min_subscribers:
                    return True
                remaining = deadline - clock.monotonic()
                if remaining <= 0:
                    log.warning("%s: %d of %d subscriber(s) after %.3gs; publishing anyway",
                                self.label, self.subscriptions.matching(self.topic),
                                self.min_subscribers, self.wait_for_subscribers_s)
                    return False
                poller.poll(remaining)
        finally:
            poller.close()

    def deliver(self, args: dict, workflow_id: str) -> dict:
        runtime = self.runtime
        if not self.waited:
            self.waited = True
            self.wait_for_subscribers()
        body = encode_request(workflow_id, args, max_bytes=runtime.max_message_bytes)
        runtime.emit("out", "message", self.name, workflow_id, args=args)
        self.socket.send([self.topic, body])  # never refused: drops are per subscriber
        return {}
