"""State types (SPEC §7): the out side owns a value, in sides follow it over ZeroMQ.

`build_state` picks the component for a spec: `OutState` for `full_update_out` and
`delta_update_out`, `InState` for `full_update_in` and `delta_update_in` (and
`local_variable_delta_update` on either side).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .in_state import InState
from .merge import merge_patch
from .out_state import OutState, OutStateCore
from .sync import InStateSync

if TYPE_CHECKING:
    from ..models import StateSpec
    from ..runtime import Runtime

__all__ = ["build_state", "InState", "InStateSync", "OutState", "OutStateCore", "merge_patch"]


def build_state(spec: "StateSpec", runtime: "Runtime") -> InState | OutState:
    return (OutState if spec.side == "out" else InState)(spec, runtime)
