"""JSON Merge Patch (RFC 7396) on Python dicts, in place.

A delta state applies every update with this, on both sides, up to 100,000 times a
second: so the patch is merged into the live value (no copy of the whole value per
update), and only the dicts the patch brings in are built anew.

Rules: a key set to ``None`` is removed; a dict merges recursively into a dict (and
replaces anything else, merged into ``{}`` so that its own ``None`` entries disappear);
any other value replaces. Keys may be of any hashable type: ``{Decimal: Decimal}``
order-book levels merge like string keys.
"""

from __future__ import annotations

from typing import Mapping

__all__ = ["merge_patch", "copy_value", "replace_value"]


def merge_patch(target: dict, patch: Mapping) -> dict:
    """Merges `patch` into `target` in place (RFC 7396) and returns `target`.

    Nested dicts taken from `patch` are copied, so later patches never write into the
    caller's objects. Other values (lists, Decimals...) are stored as given.
    """
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict):
            current = target.get(key)
            if isinstance(current, dict):
                merge_patch(current, value)
            else:
                target[key] = merge_patch({}, value)
        else:
            target[key] = value
    return target


def copy_value(value: Mapping) -> dict:
    """A copy of a full value whose dicts are all new (other values are shared).

    A snapshot replaces the whole value and later deltas merge into it in place: the
    caller's nested dicts must not be the ones they merge into. Unlike `merge_patch`,
    a full value keeps its ``None`` entries (an Optional key may hold None).
    """
    return {key: copy_value(item) if isinstance(item, dict) else item
            for key, item in value.items()}


def replace_value(target: dict, value: Mapping) -> dict:
    """Makes `target` equal to `value`, keeping the identity of `target`.

    `runtime.states` hands out the live dict: replacing its content rather than the
    object means a handler's reference to a state never goes stale.
    """
    target.clear()
    target.update(value)
    return target
