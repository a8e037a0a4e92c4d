"""A replyer's cache of its recent replies, by request id (creation argument `dedupe`).

A requester retries an attempt that timed out with the same request id and the same
body, so a request may reach a replyer twice (its first reply was lost, or was late):
delivery is at least once. With `dedupe: N` the replyer keeps its last N successful
replies and answers a repeat from the cache instead of running the handler again.

A repeat must match the request id AND the request's bytes (a digest of them): another
client reusing an id with other arguments runs the handler, and cannot read a reply to a
request it could not have written. Error replies are not kept (a retry may succeed).
The cache is per replyer process: a retry that fails over to another replica runs there.
Bounded by `MAX_ENTRIES` replies and `MAX_BYTES` bytes of replies and request ids, oldest
evicted first, each counted at what it holds in memory; an id that is not ASCII or longer
than `MAX_RID_CHARS` is not kept (a peer's 1 MB ids with empty replies would otherwise fill
memory under a bound that counted replies alone, and a character may take 4 bytes).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

MAX_ENTRIES = 100_000
MAX_BYTES = 64 * 1024 * 1024
MAX_RID_CHARS = 256  # ours are a few ASCII characters ("1a2b3c4d-17"); others are not kept
# What an entry holds besides the characters of its id and the bytes of its reply (the
# str and bytes objects' headers, the tuple, the digest, the dict's slot), measured with
# tracemalloc at 100,000 entries: 278 bytes.
_ENTRY_BYTES = 288


def _digest(body: bytes) -> bytes:
    return hashlib.blake2b(body, digest_size=16).digest()


class ReplyCache:
    def __init__(self, entries: int) -> None:
        self.max_entries = min(entries, MAX_ENTRIES)
        self._replies: OrderedDict[str, tuple[bytes, bytes]] = OrderedDict()
        self.bytes = 0  # of every kept id and reply, with `_ENTRY_BYTES` each

    def __len__(self) -> int:
        return len(self._replies)

    def get(self, rid: object, request_body: bytes) -> bytes | None:
        if not isinstance(rid, str):
            return None
        kept = self._replies.get(rid)
        if kept is None or kept[0] != _digest(request_body):
            return None
        return kept[1]

    def put(self, rid: object, request_body: bytes, reply: bytes) -> None:
        if (not isinstance(rid, str) or len(rid) > MAX_RID_CHARS or not rid.isascii()
                or len(reply) > MAX_BYTES // 4):
            return  # an id-less request cannot be repeated; a huge reply is not worth it
        old = self._replies.pop(rid, None)
        if old is not None:
            self.bytes -= _size(rid, old[1])
        self._replies[rid] = (_digest(request_body), reply)
        self.bytes += _size(rid, reply)
        while len(self._replies) > self.max_entries or self.bytes > MAX_BYTES:
            evicted, (_, evicted_reply) = self._replies.popitem(last=False)
            self.bytes -= _size(evicted, evicted_reply)


def _size(rid: str, reply: bytes) -> int:
    return len(rid) + len(reply) + _ENTRY_BYTES
