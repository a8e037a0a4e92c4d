"""What a replay compares, and how it reports a difference (SPEC §12).

A recorded output and what the service sent are compared as trace records without ``t``
or ``workflow_id`` (identities, not content), with the masked fields blanked. The first
difference is a `ReplayDivergence` (in `service_framework.errors`), naming the event
index, the expected and the actual.
"""

from __future__ import annotations

from typing import Any, Iterable

from ..events import Event
from .lines import event_record

__all__ = ["MASKED", "Masks", "comparable", "parse_masks", "stream_of"]

MASKED = "<masked>"
Masks = list[tuple[str | None, list[str]]]  # (connection/state name or None for all, key path)


def _mask_value(value: Any, parts: list[str]) -> Any:
    if not parts:
        return MASKED
    head, rest = parts[0], parts[1:]
    if isinstance(value, dict):
        return {key: _mask_value(item, rest) if head == "*" or str(key) == head else item
                for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        items = [_mask_value(item, rest) if head in ("*", str(i)) else item
                 for i, item in enumerate(value)]
        return tuple(items) if isinstance(value, tuple) else items
    return value


def parse_masks(mask: Iterable[str] | str) -> Masks:
    """``"return_args.count"``, ``"args.*.updated_time"``, ``"book:args.updated_time"``."""
    if isinstance(mask, str):
        mask = [mask]
    parsed = []
    for text in (part.strip() for item in mask for part in str(item).split(",")):
        name, colon, path = str(text).rpartition(":")
        if not path:
            raise ValueError(f"mask {text!r}: expected a key path like 'return_args.count'")
        parsed.append((name if colon else None, path.split(".")))
    return parsed


def comparable(event: Event, masks: Masks) -> dict:
    """The record compared in a replay: no `t` or `workflow_id`, masked fields blanked."""
    payload = event.payload
    for name, parts in masks:
        if name is None or name == event.name:
            payload = _mask_value(payload, parts)
    record = event_record(event._replace(payload=payload))
    del record["t"], record["workflow_id"]
    return record


def stream_of(event: Event) -> tuple[str, str]:
    """The stream an event belongs to: in main mode, only the order within one is fixed."""
    kind = "reply" if event.kind == "error" else event.kind  # a reply or an error reply
    return event.dir, f"{kind} {event.name}"
