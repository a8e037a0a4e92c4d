"""The in side of a state: follows an out side with snapshots, numbered updates and heartbeats.

`InState` drives the pure state machine `InStateSync` (module `sync`) from sockets and
timers: a SUB `subscriber` socket for updates and heartbeats, a DEALER `requester` socket
for snapshot requests (Lazy Pirate: a fresh socket after each timeout), a timer for
request timeouts and one for a silent out side. Nothing here ever blocks the loop.

Bounds against an out side that misbehaves (creation arguments, with their defaults):
- `max_buffer_bytes` (32 MiB, `sync.DEFAULT_MAX_BUFFER_BYTES`) and 100,000 updates: what
  is buffered while out of sync, kept as the bytes received (decoded again to be
  replayed); past the bytes the buffer is dropped and the snapshot alone resyncs.
- snapshot requests back off: the first of an episode goes at once, each next one after
  `SNAPSHOT_BACKOFF_S` doubling up to `SNAPSHOT_BACKOFF_CAP_S`, times a jitter in [0.5, 1)
  taken from the request id (so the memory bus stays deterministic). An episode ends when
  a sync has held for the cap.
- a `heartbeat_s` announced by the out side is clamped to at least `MIN_HEARTBEAT_S`, with
  one warning per state.
"""

from __future__ import annotations

import logging
import zlib
from typing import TYPE_CHECKING

from ..component import Component, topic_bytes
from ..logs import get_logger
from ..transport.base import Frames, Socket
from . import protocol
from .out_state import DEFAULT_HEARTBEAT_S, DEFAULT_STATE_HWM
from .parts import merge_fragment
from .protocol import Heartbeat, Snapshot, Update
from .sync import APPLIED, BUFFERED, DEFAULT_MAX_BUFFER_BYTES, IGNORED, LOST, InStateSync
from .view import DELTA, SNAPSHOT, StateUpdate

if TYPE_CHECKING:
    from ..models import StateSpec
    from ..runtime import Runtime

log = get_logger()

DEFAULT_SNAPSHOT_TIMEOUT_S = 2.0
LIVENESS = 3  # heartbeat intervals of silence before the out side is presumed gone
BATCH = 512  # messages handled per wake-up before the loop looks at other sockets
# An announced interval below this would turn silence detection into a snapshot storm.
MIN_HEARTBEAT_S = 0.05
SNAPSHOT_BACKOFF_S = 0.05
SNAPSHOT_BACKOFF_CAP_S = 5.0
PART_WINDOW = 4  # parts of a large snapshot in flight towards this side (`parts.py`)


class InState(Component):
    """An in-state: the value handlers see in `states`, kept equal to the out side's.

    `synced` says whether it is in sync; while it is not, handlers see the last good value.
    """

    section = "states"

    def __init__(self, spec: "StateSpec", runtime: "Runtime") -> None:
        super().__init__(spec, runtime)
        creation = spec.creation
        self.topic = topic_bytes(creation)
        self.snapshot_timeout_s = float(creation.get("snapshot_timeout_s",
                                                     DEFAULT_SNAPSHOT_TIMEOUT_S))
        heartbeat_s = float(creation.get("heartbeat_s", DEFAULT_HEARTBEAT_S))
        self.silence_s = LIVENESS * heartbeat_s  # until the out side tells its interval
        self.hwm = int(creation.get("hwm", DEFAULT_STATE_HWM))
        self.on_update = spec.on_update
        self._on_update_where = f"{self.label}: on_update"
        self.sync = InStateSync(
            max_buffer_bytes=int(creation.get("max_buffer_bytes", DEFAULT_MAX_BUFFER_BYTES)),
            decode=self._decode_buffered)
        self.subscriber: Socket | None = None
        self.requester: Socket | None = None
        self._check = spec.value.check
        self._delta = spec.kind == "delta"
        self._rid: str | None = None  # the snapshot request in flight
        self._assembly: Snapshot | None = None  # a snapshot in parts: what came so far
        self._assembled_bytes = 0
        self._check_assembled = False  # a part failed its own check: check the whole value
        self._request_deadline: float | None = None
        self._attempt = 0
        self._episode_requests = 0  # snapshot requests since a sync last held (backoff)
        self._request_at: float | None = None  # a backed-off request waits for this time
        self._fresh_when_due = False
        self._rid_sent: str | None = None  # the last request's id: the backoff's jitter
        self._synced_at = 0.0
        self._buffers_dropped_seen = 0
        self._clamp_warned = False
        self._last_heard = 0.0
        self._was_synced = False
        self._losses_seen = 0
        self._snapshots = self.has_address("requester")
        self._handled_epoch: str | None = None  # the epoch of the last update on_update saw
        # counters, for tests and operators (updates_applied includes snapshots)
        self.updates_applied = self.ignored = self.bad_updates = self.heartbeats = 0
        self.snapshot_requests = self.snapshot_timeouts = 0
        self.out_of_sync = 0
        self.snapshot_bytes = 0  # the size of the last snapshot taken
        runtime.set_state_value(spec.name, self.sync.value)

    @property
    def synced(self) -> bool:
        return self.sync.synced

    @property
    def value(self) -> dict:
        return self.sync.value

    @property
    def seq(self) -> int:
        return self.sync.seq

    def open(self) -> None:
        self.subscriber = self.open_socket("subscriber", hwm=self.hwm)
        self.subscriber.subscribe(self.topic)  # subscribe first, then ask for the snapshot
        self.runtime.watch(self.subscriber, self.on_readable)
        self._last_heard = self.runtime.clock.monotonic()
        self._request_snapshot(fresh=True)

    def close(self) -> None:
        super().close()
        self.subscriber = self.requester = None
        self._rid = self._request_deadline = self._request_at = None

    # -- updates and heartbeats -----------------------------------------------------------
    def on_readable(self, socket: Socket) -> None:
        self._last_heard = self.runtime.clock.monotonic()
        handle, runtime = self._handle, self.runtime
        for _ in range(BATCH):
            if runtime.stop_requested:  # a big update costs ms: a stop must not wait for 512
                return
            frames = socket.recv()
            if frames is None:
                return
            handle(frames)

    def _handle(self, frames: Frames) -> None:
        if len(frames) != 2 or (self.topic and frames[0] != self.topic):  # b"": every one
            if len(frames) != 2:  # a prefix match of another topic is not an error
                self._bad(f"{len(frames)} frame(s), expected [topic, body]")
            return
        try:
            message = protocol.decode_message(frames[1], max_bytes=self.runtime.max_message_bytes)
            if message.__class__ is Update:
                self._check(message.args, partial=self._delta and not message.is_snapshot)
        except ValueError as error:  # CodecError, ProtocolError, ArgumentError
            self._bad(error)
            return
        if message.__class__ is Heartbeat:
            self.heartbeats += 1
            if message.heartbeat_s:
                self._announced(message.heartbeat_s)
            if self.sync.on_heartbeat(message) is LOST:
                self._after_sync_change()
            return
        outcome = self.sync.feed(message, frames[1])
        if outcome is APPLIED:
            self.updates_applied += 1
            if self.on_update is not None or self.runtime.event_listeners:
                self._applied(message)
        elif outcome is IGNORED:
            self.ignored += 1
        elif outcome is not BUFFERED:
            self._after_sync_change()
        elif self.sync.buffers_dropped != self._buffers_dropped_seen:
            self._buffer_dropped()

    def _buffer_dropped(self) -> None:
        dropped, self._buffers_dropped_seen = (self.sync.buffers_dropped
                                               - self._buffers_dropped_seen,
                                               self.sync.buffers_dropped)
        self.runtime.count("state_buffers_dropped", dropped)
        log.warning("%s: buffered updates passed %d bytes (max_buffer_bytes): dropped them; "
                    "the snapshot alone resyncs", self.label, self.sync.max_buffer_bytes)

    def _announced(self, heartbeat_s: float) -> None:
        """The out side's heartbeat interval, from the wire: clamped (see the module doc)."""
        if heartbeat_s < MIN_HEARTBEAT_S:
            if not self._clamp_warned:
                self._clamp_warned = True
                log.warning("%s: the out side announces heartbeat_s=%.3g; using %g (the "
                            "floor)", self.label, heartbeat_s, MIN_HEARTBEAT_S)
            heartbeat_s = MIN_HEARTBEAT_S
        self.silence_s = LIVENESS * heartbeat_s

    def _decode_buffered(self, body: bytes) -> Update:
        """A buffered update, decoded again to be replayed (it was validated on arrival)."""
        return protocol.decode_message(body, max_bytes=self.runtime.max_message_bytes)

    def _bad(self, error: object) -> None:
        self.bad_updates += 1
        self.runtime.count("bad_state_updates")
        if self.bad_updates <= 10 or self.bad_updates % 1000 == 0:  # a flood logs little
            log.warning("%s: dropped a bad update (%d so far): %s", self.label,
                        self.bad_updates, error)

    def _applied(self, update: Update) -> None:
        runtime = self.runtime
        workflow_id = update.workflow_id or runtime.new_workflow_id()
        runtime.emit("in", "state", self.name, workflow_id, args=update.args,
                     seq=update.seq, is_snapshot=update.is_snapshot)
        if self.on_update is not None:
            new_epoch, self._handled_epoch = update.epoch != self._handled_epoch, update.epoch
            args = StateUpdate(update.args, kind=SNAPSHOT if update.is_snapshot else DELTA,
                               seq=update.seq, epoch=update.epoch, new_epoch=new_epoch)
            runtime.run_handler_guarded(self.on_update, args, workflow_id, self.name,
                                        where=self._on_update_where,
                                        counter="state_handler_errors")

    def _after_sync_change(self) -> None:
        """After anything but the hot path: run handlers, log transitions, ask for snapshots."""
        sync = self.sync
        for update in sync.take_applied():
            self.updates_applied += 1
            self._applied(update)
        if sync.losses != self._losses_seen:
            self._losses_seen = sync.losses
            self.out_of_sync += 1
            self.runtime.count("state_out_of_sync")
            log.warning("%s: out of sync: %s; requesting a snapshot", self.label, sync.reason)
        if sync.buffers_dropped != self._buffers_dropped_seen:
            self._buffer_dropped()
        now = self.runtime.clock.monotonic()
        if sync.synced:
            self._rid = self._request_deadline = self._request_at = None  # late replies
            self._attempt = 0                                # are dropped by their rid
            if not self._was_synced:
                self._was_synced, self._synced_at = True, now
                log.info("%s: in sync (epoch %s, seq %d)", self.label, sync.epoch, sync.seq)
        else:
            if self._was_synced and now - self._synced_at >= SNAPSHOT_BACKOFF_CAP_S:
                self._episode_requests = 0  # the last sync held: this loss is news
            self._was_synced = False
            if self._rid is None and self._request_at is None:
                self._request_snapshot(fresh=False)

    # -- snapshots ------------------------------------------------------------------------
    def _request_snapshot(self, *, fresh: bool) -> None:
        if not self._snapshots:  # no snapshot pair: the next full update syncs it
            return
        runtime = self.runtime
        delay = self._backoff()
        if delay:
            self._request_at = runtime.clock.monotonic() + delay
            self._fresh_when_due = fresh
            return
        self._request_at = None
        self._episode_requests += 1
        if fresh or self.requester is None:  # Lazy Pirate: drop whatever the old one queued
            if self.requester is not None:
                self.close_socket(self.requester)
            self.requester = self.open_socket("requester")
            runtime.watch(self.requester, self.on_reply)
        self._rid = self._rid_sent = runtime.new_workflow_id()
        self._assembly = None
        self._request_deadline = runtime.clock.monotonic() + self.snapshot_timeout_s
        self.snapshot_requests += 1
        runtime.count("snapshot_requests")
        self.requester.send([protocol.encode_snapshot_request(self._rid, PART_WINDOW)])

    def on_reply(self, socket: Socket) -> None:
        runtime = self.runtime
        while (frames := socket.recv()) is not None:
            try:
                snapshot = protocol.decode_snapshot(frames[-1],
                                                    max_bytes=runtime.max_message_bytes)
                if snapshot.rid != self._rid:
                    runtime.count("late_snapshots_dropped")
                    continue  # the answer to a request given up on
                size = len(frames[-1])
                if snapshot.part is not None:
                    snapshot = self._take_part(snapshot, size)
                    if snapshot is None:
                        continue  # more parts to come
                    size = self._assembled_bytes
                if snapshot.seq and (snapshot.part is None or not self._delta
                                     or self._check_assembled):
                    # A delta value is the sum of validated deltas: it may lack required keys.
                    self._check(snapshot.value, partial=self._delta)
            except ValueError as error:  # the request stays in flight: it times out, retries
                self._assembly = None
                self._bad(f"snapshot: {error}")
                continue
            self._rid = self._request_deadline = self._assembly = None
            self.snapshot_bytes = size
            self._last_heard = runtime.clock.monotonic()
            if snapshot.heartbeat_s:
                self.silence_s = LIVENESS * snapshot.heartbeat_s
            self.sync.on_snapshot(snapshot, owned=snapshot.part is not None)
            self._after_sync_change()

    def _take_part(self, part: Snapshot, size: int) -> Snapshot | None:
        """Adds one part of a snapshot sent in parts (checked as it comes, so a bad value is
        named in its part) and asks for the next; the whole snapshot once the last is in."""
        assembly = self._assembly
        if part.part == 0:
            assembly = part._replace(value={})
            self._assembled_bytes, self._check_assembled = 0, False
        elif assembly is None or (part.part, part.epoch, part.seq) != (
                assembly.part, assembly.epoch, assembly.seq):
            raise protocol.ProtocolError(
                f"part {part.part} of the snapshot at {part.epoch}/{part.seq} does not follow "
                + (f"part {assembly.part - 1} at {assembly.epoch}/{assembly.seq}"
                   if assembly else "a first part"))
        try:
            self._check(part.value, partial=True)
        except ValueError:
            # A record the model types as a whole (a TypedDict, a dataclass) may be cut
            # across parts: its pieces fail alone. The whole value is checked once it is
            # in, and refused then (naming the key) if it is really bad.
            self._check_assembled = True
        merge_fragment(assembly.value, part.value)
        self._assembled_bytes += size
        received = part.part + 1
        self._assembly = assembly._replace(part=received)
        self._request_deadline = self.runtime.clock.monotonic() + self.snapshot_timeout_s
        if part.parts is None:  # not the end marker yet
            self.requester.send([protocol.encode_snapshot_more(self._rid, received)])
            return None
        return assembly._replace(part=part.part, heartbeat_s=part.heartbeat_s)

    def _backoff(self) -> float:
        """How long the next snapshot request of this episode waits (0 for the first)."""
        if not self._episode_requests or self._request_at is not None:
            return 0.0
        base = min(SNAPSHOT_BACKOFF_CAP_S,
                   SNAPSHOT_BACKOFF_S * 2 ** min(self._episode_requests - 1, 16))
        jitter = zlib.crc32((self._rid_sent or "").encode()) / 0xFFFFFFFF  # [0, 1]
        return base * (0.5 + 0.5 * jitter)

    # -- timers ---------------------------------------------------------------------------
    def next_deadline(self) -> float | None:
        if self._request_at is not None:
            return self._request_at
        if self._request_deadline is not None:
            return self._request_deadline
        if self.sync.synced:
            return self._last_heard + self.silence_s
        return None

    def on_timer(self, now: float) -> None:
        if self._request_at is not None:
            if now >= self._request_at:
                self._request_snapshot(fresh=self._fresh_when_due)
        elif self._request_deadline is not None:
            if now >= self._request_deadline:
                self._timed_out()
        elif self.sync.synced and now >= self._last_heard + self.silence_s:
            self.sync.lose_sync(f"timeout: nothing heard from the out side for "
                                f"{now - self._last_heard:.3g}s")
            self._after_sync_change()

    def _timed_out(self) -> None:
        self.snapshot_timeouts += 1
        self._attempt += 1
        self.runtime.count("snapshot_timeouts")
        # The first timeout of an episode is news; the retries that follow are not.
        level = logging.WARNING if self._attempt == 1 else logging.DEBUG
        log.log(level, "%s: timeout: no snapshot from %s within %.3gs (attempt %d); "
                "retrying with a fresh socket", self.label,
                ", ".join(self.endpoints("requester", many=True)), self.snapshot_timeout_s,
                self._attempt)
        self._request_snapshot(fresh=True)
