"""publisher: `[topic, body]` on an XPUB socket.

XPUB rather than PUB because it shows subscriptions arriving: with `min_subscribers` the
first send waits for them instead of sleeping after bind (the slow-joiner problem).

Creation arguments (besides `topic` and `hwm`):

- `min_subscribers` (default 0) and `wait_for_subscribers_s` (default 5.0): the first send
  waits until that many subscriptions matching the topic have arrived, at most that long.
- `wait_after_creation_s` (0.0.12's spelling): 0.0.12 slept that long after creating the
  socket so that subscribers could join. Here nothing sleeps: the first send waits up to
  that long, and only until `min_subscribers` — at least one — have subscribed, which is
  what the sleep was for (a 0.0.12 publisher with no subscriber pays the whole wait, once,
  as it did). It takes the place of `wait_for_subscribers_s`.
- `is_x_pub`: connect to an XSUB/XPUB proxy (a bus) instead of binding. The subscriptions
  this socket sees are those the proxy forwards: one per topic however many subscribers
  are behind it (a non-verbose proxy), so `min_subscribers` above 1 cannot be met through
  a proxy and waits its whole time.

High-water-mark drops happen per subscriber, silently, as on a ZMQ PUB socket (on both
transports): a subscriber whose queue is full loses its copy and the others get theirs.
The publisher cannot count them (libzmq exposes no per-subscriber drop count); they are
seen where they land — a state's in side counts a seq gap (`state_out_of_sync`) and
recovers with a snapshot; a subscriber can find gaps if its messages carry numbers.
"""

from __future__ import annotations

import uuid

from ..component import SubscriptionCounter, topic_bytes, wait_for_subscribers
from ..wire.envelope import encode_publication
from .outbound import OutboundConnection

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
            # `min_subscribers` (at least one) have subscribed (0: no wait, as no sleep).
            self.wait_for_subscribers_s = float(creation["wait_after_creation_s"])
            if self.wait_for_subscribers_s > 0:
                self.min_subscribers = max(self.min_subscribers, 1)
        self.is_x_pub = bool(creation.get("is_x_pub", False))
        self.subscriptions = SubscriptionCounter(self.topic)
        self.waited = self.min_subscribers <= 0
        # Who numbers the publications (subscribers count gaps per origin): random over
        # ZeroMQ, from the names on the memory bus (its bytes are the same for a seed).
        self.origin = (f"{runtime.name}.{self.name}" if runtime.transport.seed is not None
                       else uuid.uuid4().hex[:16])
        self.published = 0

    def open(self) -> None:
        self.socket = self.open_socket("publisher", hwm=int(self.spec.creation.get("hwm", 1000)))
        if self.waited:  # no subscriber to wait for: read subscriptions as they come (a
            # flood must not queue up in libzmq), and only a topic's first one
            # (never polled by the loop: main may send on it from its own thread, and a
            # ZeroMQ socket used by two threads at once crashes; non-verbose, duplicates
            # are not even queued, the rest wait within the socket's receive HWM)
            self.socket.quiet_subscriptions()

    def wait_for_subscribers(self) -> bool:
        """Blocks (up to `wait_for_subscribers_s`) until `min_subscribers` have subscribed."""
        return wait_for_subscribers(self.runtime, self.socket, self.subscriptions, self.topic,
                                    self.min_subscribers, self.wait_for_subscribers_s,
                                    owner=f"{self.runtime.name}.{self.name}", label=self.label)

    def deliver(self, args: dict, workflow_id: str) -> dict:
        runtime = self.runtime
        if not self.waited:
            self.waited = True
            self.wait_for_subscribers()
            # Nothing counts them from now on: a duplicate is not even queued. (Not watched:
            # this may be main's thread, the loop's poller is the loop's; what queues now
            # is bounded by the socket's high-water mark.)
            self.socket.quiet_subscriptions()
        self.published += 1
        body = encode_publication(workflow_id, args, self.origin, self.published,
                                  max_bytes=runtime.max_message_bytes)
        runtime.emit("out", "message", self.name, workflow_id, args=args)
        self.socket.send([self.topic, body])  # never refused: drops are per subscriber
        return {}
