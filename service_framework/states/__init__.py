"""State types (SPEC §7); `build_state` picks the class for a spec."""

from __future__ import annotations


def build_state(spec, runtime):
    raise NotImplementedError("states are being built")
