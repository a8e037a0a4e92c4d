"""The out side of a state: owns the value, numbers the updates, publishes and serves snapshots.

`OutStateCore` is the protocol without sockets (value, epoch, seq; update → body; snapshot
reply; heartbeat), so a test harness can fake an out side with the very same bytes.
`OutState` is the component: an XPUB `publisher` socket for updates and heartbeats and a
ROUTER `replyer` socket for snapshot requests.

Creation arguments read here, besides `topic`, `hwm` and `heartbeat_s` (0.0.12's
`is_x_pub` and `wait_after_creation_s` are honoured as it meant them):

- `is_x_pub`: the `publisher` connects to an XSUB/XPUB proxy (a bus) instead of binding;
  snapshots are still served from this service's own `replyer` (`addresses.socket_needs`).
- `wait_after_creation_s`: 0.0.12 slept that long after creating the socket so that
  subscribers could join. Nothing sleeps here: the first update waits up to that long, and
  only until one subscription matching the topic has arrived (behind a proxy: the one the
  proxy forwards). Meanwhile heartbeats pause; snapshot requests are answered.
- A full-update state may have no `replyer` address (as in 0.0.12): it serves no
  snapshots, and an in side that joins late waits for the next update (a whole value).
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any, Mapping

from ..component import Component, SubscriptionCounter, topic_bytes, wait_for_subscribers
from ..logs import get_logger
from ..transport.base import Frames, Socket
from ..transport.peer_budget import DEFAULT_PEER_BYTES
from ..wire import codec
from ..wire.codec import DEFAULT_MAX_MESSAGE_BYTES, CodecError
from . import protocol
from .merge import copy_value, merge_patch, replace_value
from .parts import PartSet, Transfers

if TYPE_CHECKING:
    from ..models import StateSpec
    from ..runtime import Runtime

log = get_logger()
DEFAULT_HEARTBEAT_S = 1.0
# A dropped update costs the in side a snapshot: queue generously before dropping.
DEFAULT_STATE_HWM = 100_000
BATCH = 256  # snapshot requests answered per wake-up


def new_epoch() -> str:
    """A random id for one start of an out side: a restart is seen as a new epoch."""
    return os.urandom(8).hex()


class OutStateCore:
    """Value, epoch and seq of an out-state, and the bodies that tell the in sides about them.

    `kind` is 'delta' (updates merge, unless `is_snapshot`) or 'full' (every update is the
    whole value). Not thread-safe: the caller serialises calls.
    """

    def __init__(self, kind: str, *, epoch: str | None = None,
                 heartbeat_s: float = DEFAULT_HEARTBEAT_S,
                 max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> None:
        if kind not in ("delta", "full"):
            raise ValueError(f"kind must be 'delta' or 'full', got {kind!r}")
        self.full = kind == "full"
        self.value: dict = {}
        self.epoch = epoch or new_epoch()
        self.seq = 0
        self.heartbeat_s = heartbeat_s
        self.max_bytes = max_bytes
        self._packed: tuple[tuple[str, int], bytes] | None = None  # (epoch, seq), the value

    def update(self, args: Mapping, is_snapshot: bool = False,
               workflow_id: str | None = None) -> bytes:
        """Applies one (validated) update and returns the body to publish.

        The body is encoded first: if `args` cannot cross the wire (CodecError), neither
        the value nor seq has changed.
        """
        is_snapshot = is_snapshot or self.full
        seq = self.seq + 1
        body = protocol.encode_update(self.epoch, seq, is_snapshot, args, workflow_id,
                                      max_bytes=self.max_bytes)
        if is_snapshot:
            replace_value(self.value, copy_value(args))
        else:
            merge_patch(self.value, args)
        self.seq = seq
        return body

    def snapshot(self, rid: str | None = None) -> bytes:
        """The reply to a snapshot request: the whole value at the current seq (packed once
        per seq, however many in sides ask for it)."""
        key = (self.epoch, self.seq)
        if self._packed is None or self._packed[0] != key:
            self._packed = (key, codec.pack(self.value, max_bytes=self.max_bytes))
        return protocol.encode_snapshot_around(rid, self.epoch, self.seq, self._packed[1],
                                               self.heartbeat_s, max_bytes=self.max_bytes)

    def heartbeat(self) -> bytes:
        return protocol.encode_heartbeat(self.epoch, self.seq, self.heartbeat_s)

    def restart(self, epoch: str | None = None) -> None:
        """As if the out side started again: a new epoch, seq 0, an empty value."""
        self.epoch = epoch or new_epoch()
        self.seq = 0
        self.value.clear()


def split_protocol_keys(args: Any, protocol_keys: frozenset[str]) -> tuple[Any, bool]:
    """(args without the protocol keys, is_snapshot).

    `is_snapshot` is always allowed; `current_num` only when a 0.0.12 model declares it,
    and it is ignored: the framework numbers updates.
    """
    if not isinstance(args, dict) or not (
            "is_snapshot" in args or ("current_num" in protocol_keys and "current_num" in args)):
        return args, False
    args = dict(args)
    is_snapshot = args.pop("is_snapshot", False)
    for key in protocol_keys:
        args.pop(key, None)
    return args, bool(is_snapshot)


class OutState(Component):
    """An out-state: `to_send('state', name, args)` validates, applies and publishes.

    `send` may run on the main-mode thread while the loop thread sends heartbeats and
    snapshot replies: `lock` guards the value, seq and the publisher socket.
    """

    section = "states"

    def __init__(self, spec: "StateSpec", runtime: "Runtime") -> None:
        super().__init__(spec, runtime)
        creation = spec.creation
        self.topic = topic_bytes(creation)
        self.heartbeat_s = float(creation.get("heartbeat_s", DEFAULT_HEARTBEAT_S))
        self.hwm = int(creation.get("hwm", DEFAULT_STATE_HWM))
        # The transport makes the epoch: random on ZeroMQ, from the seed on the memory bus.
        self.core = OutStateCore(spec.kind, epoch=runtime.new_workflow_id(),
                                 heartbeat_s=self.heartbeat_s,
                                 max_bytes=runtime.max_message_bytes)
        self.lock = threading.Lock()
        self.subscriptions = SubscriptionCounter(self.topic)
        self.transfers = Transfers()  # snapshots in parts under way (bounded: parts.py)
        self.snapshot_bytes = 0  # sent for the last snapshot asked for (all its parts so far)
        self.publisher: Socket | None = None
        self.replyer: Socket | None = None
        self._last_sent = 0.0
        self._check = spec.value.check
        self._delta = spec.kind == "delta"
        # wait_after_creation_s: pending until the first update; while a thread waits on
        # the publisher socket, nothing else touches it (heartbeats pause, a close defers)
        self._wait_s = float(creation.get("wait_after_creation_s", 0))
        self._waiting = self._close_after_wait = False
        runtime.set_state_value(spec.name, self.core.value)

    @property
    def value(self) -> dict:
        return self.core.value

    @property
    def seq(self) -> int:
        return self.core.seq

    @property
    def epoch(self) -> str:
        return self.core.epoch


    def open(self) -> None:
        self.publisher = self.open_socket("publisher", hwm=self.hwm)
        if self._wait_s <= 0:  # subscriptions are counted only for `wait_after_creation_s`:
            # else read them as they come (a flood must not queue up in libzmq), and only a
            # topic's first one
            self.publisher.quiet_subscriptions()  # read at heartbeats, under the send lock:
            # the loop never polls it (another thread may be sending on it)
        if self.has_address("replyer"):  # a full-update state may serve no snapshots
            self.replyer = self.open_socket("replyer")
            self.replyer.limit_peer_bytes(DEFAULT_PEER_BYTES)  # an in side that never reads
            self.runtime.watch(self.replyer, self.on_request)
        self._last_sent = self.runtime.clock.monotonic()

    def close(self) -> None:
        with self.lock:
            if self._waiting:  # the waiting thread closes the publisher when it is done
                self._close_after_wait = True
                if self.replyer is not None:
                    self.close_socket(self.replyer)
                self.replyer = None
                return
            super().close()
            self.publisher = self.replyer = None

    # -- updates (any thread) -------------------------------------------------------------
    def send(self, args: Any, workflow_id: str) -> dict:
        self.publish(args, workflow_id)
        return {}

    def publish(self, args: Any, workflow_id: str | None = None, *, seq: int | None = None,
                send: bool = True) -> Frames:
        """Validates and applies one update, publishes it, and returns its frames.

        A stand-alone out side (`states.standalone`) uses the rest: `seq` numbers the update
        (a recorded one keeps its seq), and `send=False` applies it without publishing, so
        the caller may lose it, hold it back or repeat it (`send_frames`).
        """
        args, is_snapshot = split_protocol_keys(args, self.spec.protocol_keys)
        self._check(args, partial=self._delta and not is_snapshot)
        if self._wait_s > 0 and send:
            self._wait_for_a_subscriber()
        with self.lock:
            if seq is not None:
                self.core.seq = seq - 1
            frames = [self.topic, self.core.update(args, is_snapshot, workflow_id)]
            if send:
                self._send_locked(frames)
        self.runtime.emit("out", "state", self.name, workflow_id or "", args=args,
                          seq=self.core.seq, is_snapshot=is_snapshot or not self._delta)
        return frames

    def _wait_for_a_subscriber(self) -> None:
        """The first update's wait (`wait_after_creation_s`), outside the lock: the loop's
        heartbeat and a snapshot request must not wait for it (on the memory bus they run
        inside it, on the same thread)."""
        with self.lock:
            publisher, timeout_s = self.publisher, self._wait_s
            if timeout_s <= 0 or publisher is None:
                return
            self._wait_s = 0.0
            self._waiting = True
        try:
            wait_for_subscribers(self.runtime, publisher, self.subscriptions, self.topic, 1,
                                 timeout_s, owner=f"{self.runtime.name}.{self.name}",
                                 label=self.label, give_up=lambda: self._close_after_wait)
        finally:
            with self.lock:
                self._waiting = False
                if not self._close_after_wait:
                    publisher.quiet_subscriptions()
                if self._close_after_wait:
                    Component.close(self)
                    self.publisher = self.replyer = None

    def send_frames(self, frames: Frames) -> None:
        """Publishes frames that `publish(send=False)` returned (again, or late)."""
        with self.lock:
            self._send_locked(frames)

    def _send_locked(self, frames: Frames) -> None:
        publisher = self.publisher
        if publisher is not None:
            # Never refused: an in side whose queue is full loses the update alone (PUB
            # semantics on both transports) and counts it there, as a seq gap
            # (`state_out_of_sync`), then recovers with a snapshot.
            publisher.send(frames)
        self._last_sent = self.runtime.clock.monotonic()

    # -- heartbeats (loop thread) ---------------------------------------------------------
    def next_deadline(self) -> float | None:
        return self._last_sent + self.heartbeat_s if self.publisher is not None else None

    def on_timer(self, now: float) -> None:
        with self.lock:
            publisher = self.publisher
            now = self.runtime.clock.monotonic()  # `send` may have run since `now` was read
            # The same sum as next_deadline(): `now - last < hb` can disagree with it in
            # floating point, and the bus would step this timer forever.
            if publisher is None or now < self._last_sent + self.heartbeat_s:
                return
            if self._waiting:  # the first update waits on the socket: no heartbeat yet
                self._last_sent = now
                return
            self.subscriptions.read(publisher)  # after a wait nothing else reads them
            publisher.send([self.topic, self.core.heartbeat()])
            self._last_sent = now

    # -- snapshot replies (loop thread) ---------------------------------------------------
    def on_request(self, socket: Socket) -> None:
        runtime = self.runtime
        for _ in range(BATCH):
            if runtime.stop_requested:  # stopping: take no new request
                return
            frames = socket.recv()
            if frames is None:
                return
            if len(frames) < 2:
                runtime.count("malformed")
                continue
            try:
                request = protocol.decode_snapshot_request(
                    frames[-1], max_bytes=runtime.max_message_bytes)
            except ValueError as error:  # CodecError and ProtocolError
                runtime.count("bad_snapshot_requests")
                log.warning("%s: dropped a bad snapshot request: %s", self.label, error)
                continue
            try:
                with self.lock:
                    bodies = self._answer(bytes(frames[0]), request)
            except CodecError as error:
                runtime.count("snapshot_errors")
                log.error("%s: cannot encode the snapshot: %s", self.label, error)
                continue
            if request.next is None:
                self.snapshot_bytes = 0
            for body in bodies:
                self.snapshot_bytes += len(body)
                self._reply(socket, frames[:-1], body)

    def _answer(self, peer: bytes, request: protocol.SnapshotRequest) -> list[bytes]:
        """The bodies a snapshot request gets now: one snapshot (an in side that takes no
        parts), the first parts of one, or the next parts of a transfer (`parts.py`)."""
        core, now = self.core, self.runtime.clock.monotonic()
        if request.next is not None:
            parts = self.transfers.more(peer, request.rid, request.next, now)
        elif request.window is not None:
            key = (core.epoch, core.seq)
            room = max(1024, self.runtime.max_message_bytes - 1024)  # for the part's head
            parts = self.transfers.start(peer, request.rid, key,
                                         lambda: PartSet(core.value, room), request.window, now)
            if parts is None:  # every transfer slot is moving: one message, if it fits
                self.runtime.count("snapshot_transfers_full")
                try:
                    return [core.snapshot(request.rid)]
                except CodecError:
                    return []
        else:
            return [core.snapshot(request.rid)]
        return [protocol.encode_snapshot_part(request.rid, part.epoch, part.seq, part.index,
                                              part.total, part.fragment, core.heartbeat_s)
                for part in parts]

    def _reply(self, socket: Socket, route: Frames, body: bytes) -> None:
        runtime = self.runtime
        if not socket.send(route + [body]):
            runtime.count("snapshots_dropped")
            log.warning("%s: dropped a snapshot reply: its in side has not read the ones "
                        "before it (more than %d bytes held for it)", self.label,
                        DEFAULT_PEER_BYTES)
