"""What a ROUTER socket still holds for each peer, in bytes.

libzmq bounds a peer's outgoing queue by message count only (SNDHWM): a client that sends
requests and never reads the replies pins up to HWM replies of any size (three such
clients echoing 1 MB held 1.4 GiB). Large replies are therefore sent zero-copy with a
tracker, which says when libzmq has let go of the buffer (handed it to the kernel, or
dropped it with its peer); a peer holding `max_bytes` of them gets no more until it reads.
Replies under `TRACK_BYTES` are not tracked: HWM × TRACK_BYTES bounds them (16 MiB).

The sum over all peers is bounded too (`DEFAULT_TOTAL_BYTES`): thirty clients that never
read held 16 MiB each (461 MiB). A peer holding nothing is given one reply from a reserve of
the same size beyond the total, so a client that reads is served while others do not; the
reserve is bounded as well (300 clients that never read, one 1 MB snapshot each, held
290 MiB while it was not), so at most twice the total is ever held.
"""

from __future__ import annotations

from collections import deque
from typing import Any

TRACK_BYTES = 16 * 1024
DEFAULT_PEER_BYTES = 16 * 1024 * 1024
DEFAULT_TOTAL_BYTES = 64 * 1024 * 1024
# Requests queued per peer before libzmq stops reading its connection (TCP backpressure
# then holds the rest on the client's side): 16 × max_message_bytes at most.
INCOMING_PER_PEER = 16
_SWEEP_EVERY = 256  # tracked sends between sweeps of the peers that are gone or done
_MAX_PEERS = 10_000


class PeerBudget:
    def __init__(self, max_bytes: int = DEFAULT_PEER_BYTES,
                 max_total: int = DEFAULT_TOTAL_BYTES) -> None:
        self.max_bytes = max_bytes
        self.max_total = max_total
        self._held: dict[bytes, deque[tuple[Any, int]]] = {}
        self._bytes: dict[bytes, int] = {}
        self._total = 0  # held for all peers (as of their last release)
        self._tracked = 0
        self.refused = 0  # replies not sent: their peer held too much already

    def admits(self, identity: bytes, size: int) -> bool:
        held = self._release(identity)
        if held and held + size > self.max_bytes:
            self.refused += 1
            return False
        # one reply for a peer that holds nothing comes from the reserve: a reader is served
        room = self.max_total if held else 2 * self.max_total
        if self._total + size > room:
            self._sweep()  # what other peers have read since frees room
            if self._total and self._total + size > room:  # (none held: any one fits)
                self.refused += 1
                return False
        return True

    def track(self, identity: bytes, tracker: Any, size: int) -> None:
        if identity not in self._held:
            if len(self._held) >= _MAX_PEERS:
                self._sweep()
            self._held[identity], self._bytes[identity] = deque(), 0
        self._held[identity].append((tracker, size))
        self._bytes[identity] += size
        self._total += size
        self._tracked += 1
        if self._tracked % _SWEEP_EVERY == 0:
            self._sweep()

    def _release(self, identity: bytes) -> int:
        ledger = self._held.get(identity)
        if ledger is None:
            return 0
        while ledger and ledger[0][0].done:  # libzmq lets go in order, per peer
            size = ledger.popleft()[1]
            self._bytes[identity] -= size
            self._total -= size
        return self._bytes[identity]

    def _sweep(self) -> None:
        """Forgets peers holding nothing (gone, or reading): their ledgers are the memory."""
        for identity in list(self._held):
            if not self._release(identity):
                del self._held[identity], self._bytes[identity]
