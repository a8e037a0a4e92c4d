"""requester: a request with a deadline, Lazy-Pirate retries, and no stuck state.

A DEALER socket, not REQ: after a timeout REQ refuses to send again. On every timeout
the socket is replaced (Lazy Pirate), and each request carries an id so a late answer to
an abandoned request is recognised and dropped.

Its address may list several endpoints: replicas of one replyer (`replicas.py` says how
one is chosen). Each replica has a socket of its own; an attempt that times out on one
is retried on the next, so a request is tried `1 + retries` times and at least once on
every replica. A retry sends the same request id again: delivery is at least once, and
a replyer created with `dedupe` answers a repeated id from its cache.
"""

from __future__ import annotations

import itertools
import threading

from ..errors import RemoteError, RequestTimeout, ServiceStopping
from ..logs import get_logger
from ..wire.codec import CodecError
from ..wire.envelope import EnvelopeError, decode_reply, encode_request
from .outbound import OutboundConnection
from .replicas import Replica, ReplicaSet

log = get_logger()
DEFAULT_TIMEOUT_S = 5.0


class Requester(OutboundConnection):
    def __init__(self, spec, runtime) -> None:
        super().__init__(spec, runtime)
        creation = spec.creation
        self.timeout_s = float(creation.get("timeout_s", DEFAULT_TIMEOUT_S))
        self.retries = int(creation.get("retries", 0))
        self._ids = itertools.count(1)
        # its own: a transport's ids share their first characters, and two requesters'
        # ids must never meet at a `dedupe` replyer
        self._prefix = runtime.new_workflow_id()  # whole: seeded on the memory bus
        self.replicas: ReplicaSet | None = None
        # What metrics read: attempts refused at the high-water mark are `sends_refused`.
        self.timeouts = self.attempts_timed_out = self.retries_sent = self.sends_refused = 0
        self.poller = None
        # close() wakes the poller from another thread while the sending thread may be
        # closing it: a wake after the close would write into whatever file reused its fd.
        self._poller_lock = threading.Lock()

    def open(self) -> None:
        endpoints = self.endpoints("requester", many=True)  # fail early on a missing address
        self.replicas = ReplicaSet(endpoints, self.timeout_s)
        for replica in self.replicas.replicas:
            self._new_socket(replica)

    def _new_socket(self, replica: Replica) -> None:
        if replica.socket is not None:
            self.poller.unregister(replica.socket)  # a closed socket must not stay in it
            self.close_socket(replica.socket)
        if self.poller is None:
            self.poller = self.runtime.transport.poller(owner=f"{self.runtime.name}.{self.name}")
        replica.socket = self.open_socket("requester", only=[replica.endpoint])
        self.poller.register(replica.socket)

    def release_sockets(self) -> None:
        super().release_sockets()
        with self._poller_lock:
            if self.poller is not None:
                self.poller.close()
                self.poller = None
        if self.replicas is not None:
            for replica in self.replicas.replicas:
                replica.socket = None

    def deliver(self, args: dict, workflow_id: str) -> dict:
        runtime = self.runtime
        rid = f"{self._prefix}-{next(self._ids)}"
        body = encode_request(workflow_id, args, rid, max_bytes=runtime.max_message_bytes)
        runtime.emit("out", "request", self.name, workflow_id, args=args)
        clock = runtime.clock
        replicas = self.replicas
        # At least one attempt per replica: one that died costs its attempt's timeout,
        # never the caller an error while another replica answers.
        attempts = max(1 + self.retries, len(replicas))
        order = replicas.order(clock.monotonic())
        outcomes: list[str] = []  # what each attempt came to, for the RequestTimeout
        for attempt in range(1, attempts + 1):
            replica = order[(attempt - 1) % len(order)]
            if replica.socket is None:
                self._new_socket(replica)
            deadline = clock.monotonic() + self.timeout_s
            if attempt > 1:
                self.retries_sent += 1
            sent, stopping = replica.socket.send([body]), False
            if not sent:
                self.sends_refused += 1  # its queue is full: on to the next attempt at once
            else:
                while (not stopping and not self.closed
                       and (remaining := deadline - clock.monotonic()) > 0):
                    for socket in self.poller.poll(remaining):
                        reply = self._receive(socket, rid)
                        if reply is None:
                            continue
                        if reply.error is None:
                            return self.check_reply(reply.return_args, workflow_id)
                        # Refused unrun by a replica that is stopping: another one may run
                        # it (a rolling restart costs the caller nothing).
                        stopping = (reply.error["type"] == "ServiceStopping"
                                    and len(replicas) > 1 and attempt < attempts)
                        if not stopping:
                            runtime.emit("in", "error", self.name, workflow_id,
                                         error=reply.error)
                            raise RemoteError(reply.error["type"], reply.error["message"],
                                              self.name)
                        break
            if self.closed:  # stopped while failing over: the next replica is not tried
                self._abandon(workflow_id, attempt)
            if stopping:
                runtime.count("refused_by_a_stopping_replica")
            else:
                runtime.count("request_attempts_timed_out")
                self.attempts_timed_out += 1
            pause = replicas.failed(replica, clock.monotonic())
            more = (f"; suspect for {pause:.3g}s, trying the next replica"
                    if len(replicas) > 1 and attempt < attempts else "")
            what = ("a refusal (the replica is stopping)" if stopping else
                    f"no reply within {self.timeout_s:.3g}s" if sent else "its queue is full")
            outcomes.append(f"{replica.endpoint}: {what}")
            log.warning("%s: %s from %s (attempt %d of %d)%s", self.label, what,
                        replica.endpoint, attempt, attempts, more)
            self._new_socket(replica)  # Lazy Pirate: a fresh socket, queued requests discarded
        runtime.count("request_timeouts")
        self.timeouts += 1
        timeout = RequestTimeout(f"{self.label}: no reply in {attempts} attempt(s): "
                                 + "; ".join(outcomes))
        self.record_error(timeout, workflow_id)  # a replay raises it again, message and all
        raise timeout

    def close(self) -> None:
        """Also ends a request waiting on another thread (main mode): it raises
        `ServiceStopping` at once instead of waiting out its attempts."""
        self.closed = True
        with self._poller_lock:
            if self.poller is not None:
                self.poller.wake()
        super().close()

    def _abandon(self, workflow_id: str, attempts: int) -> None:
        stopped = ServiceStopping(f"{self.label}: the service is stopping; the request "
                                  f"was abandoned after {attempts} attempt(s)")
        self.record_error(stopped, workflow_id)
        raise stopped

    def _receive(self, socket, rid: str):
        """The reply to request `rid` waiting on `socket`, crediting its replica; None
        when nothing is waiting, or for a late answer to a request we gave up on."""
        frames = socket.recv()
        if frames is None:
            return None
        reply = self._decode(frames)
        if reply is None or reply.rid != rid:
            self.runtime.count("late_replies_dropped")
            return None
        for replica in self.replicas.replicas:
            if replica.socket is socket:
                self.replicas.answered(replica)
        return reply

    def _decode(self, frames):
        try:
            return decode_reply(frames[-1], max_bytes=self.runtime.max_message_bytes)
        except (CodecError, EnvelopeError) as error:
            log.warning("%s: dropped an unreadable reply: %s", self.label, error)
            return None
