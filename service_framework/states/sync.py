"""The Clone-pattern client as a pure state machine: which updates to apply, when to resync.

No sockets and no clock: feed it updates, heartbeats and snapshots (decoded and validated
by the caller) and it says what happened. `InState` drives it from real sockets; a test
drives it directly, one message at a time.
"""

from __future__ import annotations

from collections import deque
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

DEFAULT_MAX_BUFFER = 100_000
_by_seq = attrgetter("seq")


class InStateSync:
    """Which updates to apply, and when a snapshot is needed (SPEC §7, in side).

    Starts out of sync, buffering updates until the first snapshot. In sync, an update
    with `seq == last + 1` is applied, `seq <= last` is ignored, a gap or a new epoch
    loses sync. An update carrying the whole value (`is_snapshot`, every full update)
    needs no predecessor: it resyncs on its own when it moves forward.
    """

    def __init__(self, *, max_buffer: int = DEFAULT_MAX_BUFFER) -> None:
        self.value: dict = {}
        self.epoch: str | None = None
        self.seq = 0
        self.synced = False
        self.reason = "waiting for the first snapshot"
        self.losses = 0  # times sync was lost; each one deserves a log line
        self.buffer: deque[Update] = deque(maxlen=max_buffer)  # oldest dropped first
        self._applied: list[Update] = []

    def feed(self, update: Update) -> str:
        """Handles one update from the publisher socket (validated by the caller)."""
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
                return self._lose_with(update, f"gap: expected seq {self.seq + 1}, got {seq}")
        elif self.synced:
            if not update.is_snapshot:
                return self._lose_with(update, f"epoch changed from {self.epoch} to "
                                               f"{update.epoch} (update seq {update.seq})")
        elif not update.is_snapshot:
            self.buffer.append(update)
            return BUFFERED
        elif update.epoch == self.epoch and update.seq <= self.seq:
            return IGNORED
        return self._sync_from(update)

    def on_snapshot(self, snapshot: Snapshot) -> str:
        """Applies a snapshot reply, then the buffered updates that follow it."""
        if snapshot.epoch == self.epoch and (snapshot.seq < self.seq or (
                self.synced and snapshot.seq == self.seq)):
            return IGNORED  # older than what is applied: never roll back
        return self._sync_from(Update(snapshot.epoch, snapshot.seq, True, snapshot.value))

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

    def _lose_with(self, update: Update, reason: str) -> str:
        self.lose_sync(reason)
        self.buffer.append(update)
        return LOST

    def _sync_from(self, base: Update) -> str:
        # Copied: the args go on to handlers and traces, later deltas merge into the value.
        replace_value(self.value, copy_value(base.args))
        self.epoch, self.seq, self.synced = base.epoch, base.seq, True
        self._applied.append(base)
        if self.buffer:
            self._replay()
        return SYNCED if self.synced else LOST

    def _replay(self) -> None:
        """Buffered updates after the base, in seq order; stops (out of sync) at a gap."""
        epoch, pending = self.epoch, sorted(self.buffer, key=_by_seq)
        self.buffer.clear()
        for index, update in enumerate(pending):
            if update.epoch != epoch or update.seq <= self.seq:
                continue  # older than the base, a duplicate, or another epoch
            if update.seq != self.seq + 1 and not update.is_snapshot:
                self.lose_sync(f"gap after the snapshot: expected seq {self.seq + 1}, "
                               f"got {update.seq}")
                self.buffer.extend(u for u in pending[index:] if u.epoch == epoch)
                return
            if update.is_snapshot:
                replace_value(self.value, copy_value(update.args))
            else:
                merge_patch(self.value, update.args)
            self.seq = update.seq
            self._applied.append(update)
