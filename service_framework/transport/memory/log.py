"""The memory bus's trace: one line per delivered message."""

from __future__ import annotations

from typing import Sequence

from ..base import Frames


class DeliveryLog(Sequence[str]):
    """One line per delivered message, `"<t> <from>-><to> <frames hex>"`.

    Delivering only keeps a reference to the frames (bytes, never changed once sent);
    lines are formatted when read, so recording costs the hot path almost nothing.
    """

    def __init__(self) -> None:
        self._entries: list[tuple[float, str, str, Frames]] = []
        self._lines: list[str] = []

    def record(self, t: float, src: str, dst: str, frames: Frames) -> None:
        self._entries.append((t, src, dst, frames))

    def _format(self) -> list[str]:
        lines, entries = self._lines, self._entries
        for t, src, dst, frames in entries[len(lines):]:
            lines.append(f"{t:.6f} {src}->{dst} " + " ".join(
                frame.hex() if len(frame) <= 64 else f"{len(frame)}B:" + frame[:32].hex()
                for frame in frames))
        return lines

    def __len__(self) -> int:
        return len(self._entries)

    def __getitem__(self, index):  # type: ignore[override]
        return self._format()[index]

    def __iter__(self):
        return iter(list(self._format()))

    def __eq__(self, other: object) -> bool:
        return list(self) == list(other) if isinstance(other, (list, DeliveryLog)) else False

    def __repr__(self) -> str:
        return f"DeliveryLog({len(self)} deliveries)"

    def clear(self) -> None:
        self._entries.clear()
        self._lines.clear()
