"""What a handler may know about states: their values, whether an in-state is in sync, and
what kind of update `on_update` was given.

A consumer that keeps derived data (a running total, an index) must know when a whole new
value replaced the old one — a snapshot after a gap, or a restarted out side — to
recompute instead of adding a delta twice. `StateUpdate` tells it; `StatesView.is_synced`
tells a handler whether the value it reads is the out side's current one.
"""

from __future__ import annotations

from typing import Callable, Iterator, Mapping

from ..errors import ArgumentError

SNAPSHOT = "snapshot"  # the update is the whole value (a snapshot reply, `is_snapshot`, full)
DELTA = "delta"  # the update was merged into the value


class StateUpdate(dict):
    """The `args` an in-state's `on_update` receives: the update as a dict, plus what it was.

    `kind` is 'snapshot' (the whole value replaced the old one: recompute derived data) or
    'delta' (merged into the value); `seq` and `epoch` are the out side's numbering, and
    `new_epoch` is True when this update starts a new epoch of the out side (the first sync,
    or the out side restarted).
    """

    __slots__ = ("kind", "seq", "epoch", "new_epoch")

    def __init__(self, args: Mapping, *, kind: str, seq: int, epoch: str | None,
                 new_epoch: bool) -> None:
        super().__init__(args)
        self.kind = kind
        self.seq = seq
        self.epoch = epoch
        self.new_epoch = new_epoch

    @property
    def is_snapshot(self) -> bool:
        return self.kind == SNAPSHOT

    def __reduce__(self):  # copies and pickles as the plain dict the handler may send on
        return dict, (dict(self),)


class StatesView(Mapping):
    """`states` as handlers see it: `{name: value}` of every state, read-only, and
    `is_synced(name)`.

    An out-state is always in sync (this service owns its value); an in-state is in sync
    once a snapshot arrived and no update has been lost since (SPEC §7). Until the first
    snapshot an in-state's value is `{}`.
    """

    __slots__ = ("_values", "_synced")

    def __init__(self, values: dict[str, dict], synced: Callable[[str], bool | None]) -> None:
        self._values = values
        self._synced = synced

    def __getitem__(self, name: str) -> dict:
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"StatesView({self._values!r})"

    def is_synced(self, name: str) -> bool:
        """Whether state `name` holds its out side's current value."""
        synced = self._synced(name)
        if synced is None:
            known = ", ".join(sorted(self._values)) or "none"
            raise ArgumentError(f"is_synced: {name!r} is not a state of this service "
                                f"(states: {known})")
        return synced
