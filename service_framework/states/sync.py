"""The Clone-pattern client as a pure state machine: which updates to apply, when to resync.

No sockets and no clock: feed it updates, heartbeats and snapshots (decoded and validated
by the caller) and it says what happened. `InState` drives it from real sockets; a test
drives it directly, one message at a time.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from operator import attrgetter

from .merge import copy_value, merge_patch, replace_value
from .protocol import Heartbeat, Snapshot, Update

# Outcomes of InStateSync calls. Strings, so that tests and logs read well; compared with `is`.
APPLIED = "applied"  # the update was the next one: it is in the value
IGNORED = "ignored"  # duplicate or stale (or nothing to do): no change
BUFFERED = "buffered"  # not in sync: kept until a snapshot arrives
SYNCED = "synced"  # in sync from a whole value; `take_applied()` lists what was applied
LOST = "lost"  # out of sync (see `reason`): a snapshot is needed
OK = "ok"  # a heartbeat that agrees with what was applied

# What an out-of-sync in side keeps while it waits for a snapshot. Both bounds hold: past
# the count the oldest update goes; past the bytes (the encoded sizes, as received) the
# whole buffer goes and the snapshot alone resyncs. An update further ahead than the count
# cannot be replayed after any snapshot, so it is never kept: one resync, not a storm.
# Updates are buffered as the bytes that came off the wire (when the caller passes them),
# decoded again only to be replayed: a decoded delta can take 10-50 times its encoded size.
DEFAULT_MAX_BUFFER = 100_000
DEFAULT_MAX_BUFFER_BYTES = 32 * 1024 * 1024
_by_seq = attrgetter("seq")


class InStateSync:
    """Which updates to apply, and when a snapshot is needed (SPEC §7, in side).

    Starts out of sync, buffering updates until the first snapshot. In sync, an update
    with `seq == last + 1` is applied, `seq <= last` is ignored, a gap or a new epoch
    loses sync. An update carrying the whole value (`is_snapshot`, every full update)
    needs no predecessor: it resyncs on its own when it moves forward.
    """

    def __init__(self, *, max_buffer: int = DEFAULT_MAX_BUFFER,
                 max_buffer_bytes: int = DEFAULT_MAX_BUFFER_BYTES,
                 decode: Callable[[bytes], Update] | None = None) -> None:
        self.value: dict = {}
        self.epoch: str | None = None
        self.seq = 0
        self.synced = False
        self.reason = "waiting for the first snapshot"
        self.losses = 0  # times sync was lost; each one deserves a log line
        self.max_buffer, self.max_buffer_bytes = max_buffer, max_buffer_bytes
        self.buffer: deque[Update] = deque()
        self._sizes: deque[int] = deque()  # the encoded size of each buffered update
        self.buffer_bytes = 0
        self.buffers_dropped = 0  # times the byte budget emptied the buffer
        self._decode = decode  # raw body -> Update, for updates buffered as bytes
        self._applied: list[Update] = []

    def feed(self, update: Update, raw: bytes | None = None) -> str:
        """Handles one update from the publisher socket (validated by the caller); `raw`
        is its body as received: buffered instead of the decoded update when a `decode`
        was given, and counted against the buffer's byte budget."""
        if self.synced and update.epoch == self.epoch:
            seq = update.seq
            if seq == self.seq + 1:  # the hot path
                if update.is_snapshot:
                    replace_value(self.value, copy_value(update.args))
                else:
                    merge_patch(self.value, update.args)
                self.seq = seq
                return APPLIED
            if seq <= self.seq:
                return IGNORED
            if not update.is_snapshot:
                return self._lose_with(update, raw,
                                       f"gap: expected seq {self.seq + 1}, got {seq}")
        elif self.synced:
            if not update.is_snapshot:
                return self._lose_with(update, raw, f"epoch changed from {self.epoch} to "
                                                     f"{update.epoch} (update seq {update.seq})")
        elif not update.is_snapshot:
            self._buffer(update, raw)
            return BUFFERED
        elif update.epoch == self.epoch and update.seq <= self.seq:
            return IGNORED
        return self._sync_from(update)

    def on_snapshot(self, snapshot: Snapshot, *, owned: bool = False) -> str:
        """Applies a snapshot reply, then the buffered updates that follow it. `owned`: its
        value was built for this side alone (from parts), so it may become the value
        itself when nothing buffered will merge into it before handlers see it."""
        if snapshot.epoch == self.epoch and (snapshot.seq < self.seq or (
                self.synced and snapshot.seq == self.seq)):
            return IGNORED  # older than what is applied: never roll back
        return self._sync_from(Update(snapshot.epoch, snapshot.seq, True, snapshot.value),
                               owned=owned)

    def on_heartbeat(self, heartbeat: Heartbeat) -> str:
        """A heartbeat ahead of the last applied update means the tail was lost."""
        if not self.synced:
            return IGNORED
        if heartbeat.epoch != self.epoch:
            return self.lose_sync(f"epoch changed from {self.epoch} to {heartbeat.epoch} "
                                  f"(heartbeat at seq {heartbeat.seq})")
        if heartbeat.seq > self.seq:
            return self.lose_sync(f"gap: heartbeat at seq {heartbeat.seq}, last applied "
                                  f"{self.seq} (lost tail)")
        return OK

    def lose_sync(self, reason: str) -> str:
        """Out of sync for an outside reason (a silent out side); no-op when already out."""
        if self.synced:
            self.synced = False
            self.reason = reason
            self.losses += 1
        return LOST

    def take_applied(self) -> list[Update]:
        """What `on_snapshot` / a resync applied, in order, since the last call."""
        applied, self._applied = self._applied, []
        return applied

    def _lose_with(self, update: Update, raw: bytes | None, reason: str) -> str:
        self.lose_sync(reason)
        if update.epoch != self.epoch or update.seq - self.seq <= self.max_buffer:
            self._buffer(update, raw)  # else beyond any replay: the snapshot alone resyncs
        return LOST

    def _buffer(self, update: Update, raw: bytes | None, size: int | None = None) -> None:
        if raw is not None and self._decode is not None:
            update = update._replace(args=raw)  # bytes args: decoded again by `_replay`
        if size is None:
            size = len(raw) if raw is not None else 0
        if len(self.buffer) >= self.max_buffer:
            self.buffer.popleft()
            self.buffer_bytes -= self._sizes.popleft()
        self.buffer.append(update)
        self._sizes.append(size)
        self.buffer_bytes += size
        if self.buffer_bytes > self.max_buffer_bytes:
            self._clear_buffer()
            self.buffers_dropped += 1

    def _clear_buffer(self) -> None:
        self.buffer.clear()
        self._sizes.clear()
        self.buffer_bytes = 0

    def _sync_from(self, base: Update, *, owned: bool = False) -> str:
        # Copied: the args go on to handlers and traces, later deltas merge into the value
        # (the buffered ones before those see them).
        replace_value(self.value, base.args if owned and not self.buffer
                      else copy_value(base.args))
        self.epoch, self.seq, self.synced = base.epoch, base.seq, True
        self._applied.append(base)
        if self.buffer:
            self._replay()
        return SYNCED if self.synced else LOST

    def _replay(self) -> None:
        """Buffered updates after the base, in seq order; stops (out of sync) at a gap."""
        epoch, base = self.epoch, self.seq
        sized = sorted(zip(self.buffer, self._sizes, strict=True), key=lambda pair: pair[0].seq)
        self._clear_buffer()
        for index, (update, _) in enumerate(sized):
            if update.epoch != epoch or update.seq <= self.seq:
                continue  # older than the base, a duplicate, or another epoch
            if update.seq > base + self.max_buffer:
                break  # no out side got that far since its snapshot: a bogus seq, dropped
            if update.seq != self.seq + 1 and not update.is_snapshot:
                self.lose_sync(f"gap after the snapshot: expected seq {self.seq + 1}, "
                               f"got {update.seq}")
                for later, size in sized[index:]:
                    if later.epoch == epoch and later.seq <= base + self.max_buffer:
                        self._buffer(later, None, size)
                return
            if update.args.__class__ is bytes:
                update = self._decode(update.args)  # type: ignore[misc]
            if update.is_snapshot:
                replace_value(self.value, copy_value(update.args))
            else:
                merge_patch(self.value, update.args)
            self.seq = update.seq
            self._applied.append(update)
