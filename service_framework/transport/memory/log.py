"""The memory bus's trace: one line per delivered message."""

from __future__ import annotations

import zlib
from typing import Sequence

from ..base import Frames

_SHOWN = 64  # frames up to this long are shown whole, longer ones by length and prefix


class _Clipped:
    """What the log shows of a long frame: its length, first 32 bytes and a CRC-32 of the
    whole (two runs whose long frames differ past the prefix still log different lines)."""

    __slots__ = ("length", "prefix", "crc")

    def __init__(self, frame: bytes) -> None:
        self.length, self.prefix, self.crc = len(frame), bytes(frame[:32]), zlib.crc32(frame)


def _shown(frame: bytes | _Clipped) -> str:
    if frame.__class__ is _Clipped:
        return f"{frame.length}B:{frame.prefix.hex()}#{frame.crc:08x}"  # type: ignore[union-attr]
    return frame.hex()  # type: ignore[union-attr]


class DeliveryLog(Sequence[str]):
    """One line per delivered message, `"<t> <from>-><to> <frames hex>"`.

    Delivering keeps a reference to small frames (bytes, never changed once sent) and only
    what the line shows of a long one (its length and first 32 bytes), so the log of a long
    run holds no message bodies; lines are formatted when read.
    """

    def __init__(self) -> None:
        self._entries: list[tuple[float, str, str, Frames]] = []
        self._lines: list[str] = []

    def record(self, t: float, src: str, dst: str, frames: Frames) -> None:
        if len(frames[-1]) > _SHOWN:  # the body is the frame that can be long
            frames = [frame if len(frame) <= _SHOWN else _Clipped(frame) for frame in frames]
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
