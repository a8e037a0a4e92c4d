"""`harness.sent`: every `to_send` of a service, in order, with assertions that explain."""

from __future__ import annotations

import pprint
from typing import Iterator, Sequence, overload

from service_framework.events import Sent

_ANY = object()


def _describe(entries: Sequence[Sent]) -> str:
    if not entries:
        return "  (nothing was sent)"
    return "\n".join(f"  [{index}] {entry.output_type} {entry.output_name!r}: "
                     f"{pprint.pformat(entry.args, width=88, compact=True)}"
                     for index, entry in enumerate(entries))


def _diff(expected: object, actual: object) -> str:
    """Key by key, what differs between two argument dicts."""
    if not isinstance(expected, dict) or not isinstance(actual, dict):
        return f"    expected {expected!r}\n    actual   {actual!r}"
    lines = []
    for key in sorted(set(expected) | set(actual), key=repr):
        if key not in actual:
            lines.append(f"    - {key!r}: {expected[key]!r}  (missing)")
        elif key not in expected:
            lines.append(f"    + {key!r}: {actual[key]!r}  (unexpected)")
        elif expected[key] != actual[key] or type(expected[key]) is not type(actual[key]):
            lines.append(f"    ~ {key!r}: expected {expected[key]!r}, got {actual[key]!r}")
    return "\n".join(lines) or "    (equal)"


class Outbox(Sequence[Sent]):
    """A read-only sequence of `Sent` records, filled as the service sends."""

    def __init__(self) -> None:
        self._entries: list[Sent] = []

    def record(self, entry: Sent) -> None:
        self._entries.append(entry)

    @overload
    def __getitem__(self, index: int) -> Sent: ...

    @overload
    def __getitem__(self, index: slice) -> list[Sent]: ...

    def __getitem__(self, index):
        return self._entries[index]

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[Sent]:
        return iter(list(self._entries))

    def __repr__(self) -> str:
        return f"Outbox({self._entries!r})"

    def to(self, output_name: str) -> list[Sent]:
        """Everything sent to one connection or state, in order."""
        return [entry for entry in self._entries if entry.output_name == output_name]

    def clear(self) -> None:
        self._entries.clear()

    def _matching(self, output_type: str, output_name: str, args: object) -> list[Sent]:
        return [entry for entry in self._entries
                if entry.output_type == output_type and entry.output_name == output_name
                and (args is None or entry.args == args)]

    def assert_sent(self, output_type: str, output_name: str, args: dict | None = None) -> Sent:
        """Passes if some `to_send(output_type, output_name, args)` happened; returns it."""
        found = self._matching(output_type, output_name, args)
        if found:
            return found[0]
        same_name = [entry for entry in self._entries
                     if entry.output_type == output_type and entry.output_name == output_name]
        message = [f"expected a send to {output_type} {output_name!r}"
                   + ("" if args is None else f" with args {args!r}")]
        if same_name:
            message.append(f"sends to {output_name!r} differ:")
            for entry in same_name:
                message.append(_diff(args, entry.args))
        message.append("everything sent:")
        message.append(_describe(self._entries))
        raise AssertionError("\n".join(message))

    def assert_not_sent(self, output_type: str, output_name: str,
                        args: dict | None = None) -> None:
        found = self._matching(output_type, output_name, args)
        if found:
            raise AssertionError(
                f"expected no send to {output_type} {output_name!r}"
                + ("" if args is None else f" with args {args!r}")
                + f", but {len(found)} happened:\n" + _describe(found))
