"""`replay_delta_stream`: a stream of deltas with faults, through a fake out side."""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable, Sequence

if TYPE_CHECKING:
    from .harness import ServiceHarness


def replay_delta_stream(harness: "ServiceHarness", state: str, updates: Sequence[dict], *,
                        drop: Iterable[int] = (), duplicate: Iterable[int] = (),
                        reorder: Iterable[int] = (), restart_at: Iterable[int] = ()) -> dict:
    """Feeds `updates` to the in-state `state` with faults at those 0-based positions,
    lets the bus settle past one heartbeat, and returns the out side's value.

    - `drop`: the update is applied by the out side but lost on the way (a gap);
    - `duplicate`: the update arrives twice;
    - `reorder`: the update is held back and arrives after the next one;
    - `restart_at`: the out side restarts (new epoch, empty value) before that update.

    An update dict may carry `is_snapshot=True`. Afterwards a test asserts
    `harness.states[state] == value and harness.is_synced(state)`.
    """
    drop, duplicate = frozenset(drop), frozenset(duplicate)
    reorder, restart_at = frozenset(reorder), frozenset(restart_at)
    source = harness.state_source(state)
    for index, update in enumerate(updates):
        if index in restart_at:
            source.restart()
        args = dict(update)
        is_snapshot = bool(args.pop("is_snapshot", False))
        if index in drop:
            source.lose(args, is_snapshot=is_snapshot, settle=False)
        elif index in reorder:
            source.hold(args, is_snapshot=is_snapshot)
        else:
            source.update(args, is_snapshot=is_snapshot, settle=False)
        if index in duplicate:
            source.repeat_last(settle=False)
    source.release(settle=False)
    source.catch_up(past_heartbeat=True)
    return source.value
