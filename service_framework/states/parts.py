"""Snapshots in parts (SPEC §7; the ZeroMQ Guide's Clone pattern, by fragments).

A state's value can outgrow one message. An in side of this version asks for a snapshot
with a `window`; when the value is large, the out side answers in parts: fragments of the
value — nested dicts holding at most `PART_ITEMS` entries of one dict each, on the path to
them — each a snapshot body with its index (`part`) added, all cut from the value at one
seq. The in side checks each fragment against the model as it arrives, merges it into the
value it is building and asks for the next (`next`), so at most `window` parts are in
flight per in side; the last part also says how many there were (`parts`): the end
marker, carrying the seq like every part.

What cannot be cut is sent whole: a list, or a dict value whose fragment of `PART_ITEMS`
entries still exceeds `max_message_bytes` is cut smaller, down to one entry.

At most `window` parts, and `FLIGHT_BYTES` of them, are in flight per in side (one part
always). The out side keeps the parts of at most `MAX_PART_SETS` seqs (a transfer under way keeps
its set; see `Transfers._set_for`) and the progress of at most `MAX_TRANSFERS` transfers
(idle ones expire after `TRANSFER_IDLE_S`; one per peer): a peer that asks and never reads
holds nothing beyond its window of parts (and the peer budget bounds even that), however
large the state. When every transfer is moving, a new request is answered in one message
if the value fits one, and not at all otherwise (its in side asks again, backing off).
"""

from __future__ import annotations

from collections import OrderedDict
from itertools import islice
from typing import Callable, NamedTuple

from ..transport.peer_budget import DEFAULT_PEER_BYTES
from ..wire import codec
from .merge import copy_value

PART_ITEMS = 20_000  # entries of one dict per part: about 0.5 MB of price levels
MAX_WINDOW = 16  # parts in flight per in side, at most (an in side asks for fewer)
MAX_TRANSFERS = 64
MAX_PART_SETS = 2
TRANSFER_IDLE_S = 60.0
STALLED_S = 5.0  # an in side asks on within milliseconds; its own timeout is 2 s by default
# Bytes of parts in flight per in side: the window is cut short past it (one part always
# goes), so the replies stay within what a ROUTER holds for one peer (`peer_budget`):
# 4 parts of 14 MB were refused there, and the state never synced.
FLIGHT_BYTES = DEFAULT_PEER_BYTES // 2


def _weight(value: object, cap: int) -> int:
    """Entries below `value` (dict items and list elements, nested), counted up to `cap`."""
    if value.__class__ is dict:
        total = len(value)
        if total > cap:
            return total
        for item in value.values():
            if item.__class__ in (dict, list):
                total += _weight(item, cap - total)
                if total > cap:
                    break
        return total
    if value.__class__ is list:
        return len(value)
    return 0


def _nest(path: tuple, leaf: dict) -> dict:
    for key in reversed(path):
        leaf = {key: leaf}
    return leaf


def fragments(value: dict, limit: int = PART_ITEMS) -> list[dict]:
    """Disjoint fragments whose deep merge is `value`, each holding about `limit` entries
    at most (a dict with more is cut into chunks, recursively; a list stays whole). The
    chunks are new dicts of the same items: a view of the value at this moment, which
    later merge patches (changing the value's own dicts) do not change."""
    out: list[dict] = []
    _cut(value, (), out, max(1, limit))
    return out or [{}]


def _cut(node: dict, path: tuple, out: list[dict], limit: int) -> None:
    if len(node) > limit and not any(item.__class__ in (dict, list) for item in node.values()):
        items = iter(node.items())  # flat (price levels): cut in C
        while chunk := dict(islice(items, limit)):
            out.append(_nest(path, chunk))
        return
    group: dict = {}
    count = 0
    for key, item in node.items():
        weight = 1 + _weight(item, limit)
        if item.__class__ is dict and weight > limit:
            _cut(item, (*path, key), out, limit)  # its own parts
            continue
        if group and count + weight > limit:
            out.append(_nest(path, group))
            group, count = {}, 0
        # a copy of a small dict: merge patches change the value's own dicts in place
        group[key] = copy_value(item) if item.__class__ is dict else item
        count += weight
    if group or not node:  # an empty dict is a part of its own, so its key exists
        out.append(_nest(path, group))


def merge_fragment(target: dict, fragment: dict) -> None:
    """Adds a fragment to the value being rebuilt. Fragments share only the dicts on their
    paths (one key each, already in `target`); below, a fragment's keys are new."""
    while len(fragment) == 1:
        (key, item), = fragment.items()
        current = target.get(key)
        if current.__class__ is not dict or item.__class__ is not dict:
            break
        target, fragment = current, item
    target.update(fragment)


class PartSet:
    """The fragments of one snapshot, packed when first due (so an in side can decode the
    first parts while later ones are packed); a fragment too large for one message is cut
    finer in place, before any of it is sent."""

    def __init__(self, value: dict, max_bytes: int) -> None:
        self.entries: list[dict | bytes] = list(fragments(value))
        self.max_bytes = max_bytes
        self.limits = [PART_ITEMS] * len(self.entries)

    def packed(self, index: int) -> bytes:
        while True:
            entry = self.entries[index]
            if entry.__class__ is bytes:
                return entry
            try:
                packed = self.entries[index] = codec.pack(entry, max_bytes=self.max_bytes)
                return packed
            except codec.CodecError:
                limit = self.limits[index]
                if limit == 1:
                    raise  # one entry alone is too large: it cannot be sent at all
                finer = fragments(entry, max(1, limit // 8))
                self.entries[index:index + 1] = finer
                self.limits[index:index + 1] = [max(1, limit // 8)] * len(finer)


class Part(NamedTuple):
    """One part to send: of the snapshot at (epoch, seq), number `index`; the last says
    how many there are (`total`, None before it): the end marker."""

    epoch: str
    seq: int
    index: int
    total: int | None
    fragment: bytes  # packed


class Transfer:
    __slots__ = ("key", "bodies", "sent", "received", "window", "last_active")

    def __init__(self, key: tuple, bodies: PartSet, window: int, now: float) -> None:
        self.key = key
        self.bodies = bodies
        self.sent = 0
        self.received = 0  # the most the in side said it has
        self.window = window
        self.last_active = now


class Transfers:
    """The out side's parted snapshots in progress, by (peer, rid); bounded (see above)."""

    def __init__(self) -> None:
        self._transfers: OrderedDict[tuple[bytes, str], Transfer] = OrderedDict()
        self._sets: OrderedDict[tuple, PartSet] = OrderedDict()

    def __len__(self) -> int:
        return len(self._transfers)

    def start(self, peer: bytes, rid: str, key: tuple, build: Callable[[], PartSet],
              window: int, now: float) -> list[Part] | None:
        """A transfer to `peer` of the snapshot at `key` (epoch, seq), its parts made by
        `build` unless kept already; the first `window` parts to send. None when
        `MAX_TRANSFERS` are all moving: a flood of requests never cuts off a transfer under
        way (the caller answers otherwise). A peer's new request ends its earlier one (an
        in side asks again only when it gave up)."""
        self._expire(now)
        for name in [name for name in self._transfers if name[0] == peer]:
            del self._transfers[name]
        if len(self._transfers) >= MAX_TRANSFERS:
            stalled = next((name for name, transfer in self._transfers.items()
                            if now - transfer.last_active >= STALLED_S), None)
            if stalled is None:
                return None
            del self._transfers[stalled]
        key = self._set_for(key, build, now)
        transfer = Transfer(key, self._sets[key], max(1, min(window, MAX_WINDOW)), now)
        self._transfers[(peer, rid)] = transfer
        return self._due(peer, rid, transfer, 0)

    def _set_for(self, key: tuple, build: Callable[[], PartSet], now: float) -> tuple:
        """The key of the part set to send. At most `MAX_PART_SETS` are kept: one that no
        transfer is moving through makes room for a new one; when every kept set is being
        read, the newest is sent instead (older than `key`: the in side applies the updates
        it buffered after it, or asks again), so no transfer under way is cut off by
        late joiners arriving at other seqs. A transfer moves when its in side asks for
        parts past those it had; one that has not for `STALLED_S` (its in side crashed,
        or only pretends to read) holds no set: it is dropped with the set."""
        if key in self._sets:
            return key
        if len(self._sets) >= MAX_PART_SETS:
            busy = {id(transfer.bodies) for transfer in self._transfers.values()
                    if now - transfer.last_active < STALLED_S}
            idle = [kept for kept, parts in self._sets.items() if id(parts) not in busy]
            if not idle:
                return next(reversed(self._sets))
            evicted = self._sets.pop(idle[0])
            for name in [n for n, t in self._transfers.items() if t.bodies is evicted]:
                del self._transfers[name]
        self._sets[key] = build()
        return key

    def more(self, peer: bytes, rid: str, received: int, now: float) -> list[Part]:
        """The in side has parts below `received`: what its window now allows."""
        self._expire(now)
        transfer = self._transfers.get((peer, rid))
        if transfer is None:
            return []  # expired or unknown: the in side times out and asks again
        # the peer's word: never more than it was sent (a window at a time)
        received = min(max(received, 0), transfer.sent)
        if received > transfer.received:  # moving on (asking again for the same is not)
            transfer.received = received
            transfer.last_active = now
        self._transfers.move_to_end((peer, rid))
        return self._due(peer, rid, transfer, received)

    def _due(self, peer: bytes, rid: str, transfer: Transfer, received: int) -> list[Part]:
        parts = transfer.bodies
        epoch, seq = transfer.key
        due = []
        flight = sum(len(parts.packed(index)) for index in range(received, transfer.sent))
        while transfer.sent < min(len(parts.entries), received + transfer.window):
            index = transfer.sent
            fragment = parts.packed(index)  # may cut the entry finer: the list grows
            if flight and flight + len(fragment) > FLIGHT_BYTES:
                break  # the rest when the in side has these: its peer budget would drop it
            flight += len(fragment)
            last = index == len(parts.entries) - 1
            due.append(Part(epoch, seq, index, index + 1 if last else None, fragment))
            transfer.sent += 1
        if transfer.sent >= len(parts.entries):
            del self._transfers[(peer, rid)]  # all sent: nothing more to keep
        return due

    def _expire(self, now: float) -> None:
        for name in [n for n, t in self._transfers.items()
                     if now - t.last_active > TRANSFER_IDLE_S]:
            del self._transfers[name]
