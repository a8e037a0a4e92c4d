"""The memory bus's trace: one line per delivered message."""

from __future__ import annotations

import zlib
from typing import Sequence

from ..base import Frames

_SHOWN = 64  # frames up to this long are shown whole, longer ones by length and prefix


def _shown(frame: bytes) -> str:
    """A frame in a line: whole when short; else its length, first 32 bytes and a CRC-32
    of all of it (two runs whose long frames differ past the prefix log different lines)."""
    if len(frame) <= _SHOWN:
        return frame.hex()
    return f"{len(frame)}B:{frame[:32].hex()}#{zlib.crc32(frame):08x}"


class DeliveryLog(Sequence[str]):
    """One line per delivered message, `"<t> <from>-><to> <frames hex>"`.

    Delivering only keeps a reference to the frames (bytes, never changed once sent); lines
    are formatted when read, so recording costs the hot path almost nothing. It holds every
    message of the bus's life: a long replay (`cli.replay`) makes its bus without it.
    """

    def __init__(self) -> None:
        self._entries: list[tuple[float, str, str, Frames]] = []
        self._lines: list[str] = []

    def record(self, t: float, src: str, dst: str, frames: Frames) -> None:
        self._entries.append((t, src, dst, frames))

    def _format(self) -> list[str]:
        lines, entries = self._lines, self._entries
        for t, src, dst, frames in entries[len(lines):]:
            lines.append(f"{t:.6f} {src}->{dst} " + " ".join(map(_shown, frames)))
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
