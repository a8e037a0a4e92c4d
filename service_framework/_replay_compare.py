"""What a replay compares, and how it reports a difference (SPEC §12).

A recorded output and what the service sent are compared as trace records without ``t``
or ``workflow_id`` (identities, not content), with the masked fields blanked. The first
difference is a `ReplayDivergence`, naming the event index, the expected and the actual.
"""

from __future__ import annotations

import difflib
import json
from typing import Any, Iterable

from ._trace_json import event_record
from .runtime import Event

__all__ = ["MASKED", "Masks", "ReplayDivergence", "comparable", "parse_masks", "stream_of"]

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
    for text in mask:
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


# --------------------------------------------------------------------------- divergence
def _pretty(record: dict | None) -> str:
    return "(nothing)" if record is None else json.dumps(record, ensure_ascii=False)


class ReplayDivergence(AssertionError):
    """A replay sent something other than the recording at event `index` (0-based).

    `expected` and `actual` are trace records (dicts in trace-line form, without ``t``), or
    None for "nothing": the recording expected nothing more, or the service sent nothing.
    """

    def __init__(self, index: int, expected: dict | None, actual: dict | None,
                 reason: str = "", *, path: str | None = None, line: int | None = None) -> None:
        self.index = index
        self.expected = expected
        self.actual = actual
        self.reason = reason
        self.path = path
        self.line = line
        super().__init__(self._message())

    def _message(self) -> str:
        where = f" ({self.path}, line {self.line})" if self.path and self.line else ""
        lines = [f"replay diverged at event {self.index}{where}"
                 + (f": {self.reason}" if self.reason else ""),
                 f"  expected: {_pretty(self.expected)}",
                 f"  actual:   {_pretty(self.actual)}"]
        if self.expected is not None and self.actual is not None:
            diff = difflib.unified_diff(
                json.dumps(self.expected, indent=2, ensure_ascii=False).splitlines(),
                json.dumps(self.actual, indent=2, ensure_ascii=False).splitlines(),
                "expected", "actual", n=1, lineterm="")
            lines.append("  diff:")
            lines.extend(f"    {line}" for line in diff)
        return "\n".join(lines)

    def __reduce__(self):
        return (_rebuild_divergence, (self.index, self.expected, self.actual, self.reason,
                                      self.path, self.line))


def _rebuild_divergence(index, expected, actual, reason, path, line) -> ReplayDivergence:
    return ReplayDivergence(index, expected, actual, reason, path=path, line=line)
