"""A stand-alone out side: the out side of one in-state, as a service of its own.

Tests and replays must speak the state protocol to an in-state exactly as its real out side
would — heartbeats, snapshot replies, numbering, epochs — so the one fake out side is the
real `OutState` (built on `OutStateCore`), in a definition holding nothing else, bound at
the endpoints the in-state connects to. Whoever runs it (the harness's `state_source`, a
replay) drives it through `OutState.publish`: a chosen seq, and updates kept back with
`send=False` to be lost, held or repeated.
"""

from __future__ import annotations

import dataclasses
import types
from typing import TYPE_CHECKING

from ..loader import ServiceDefinition
from .out_state import DEFAULT_HEARTBEAT_S

if TYPE_CHECKING:
    from .in_state import InState

__all__ = ["out_side_definition"]


def out_side_definition(in_state: "InState", *, name: str,
                        heartbeat_s: float | None = None) -> ServiceDefinition:
    """A service named `name` holding only the out side of `in_state`: the same value model
    and topic, publishing and answering snapshots where `in_state` subscribes and asks."""
    spec = in_state.spec
    heartbeat_s = heartbeat_s or float(spec.creation.get("heartbeat_s", DEFAULT_HEARTBEAT_S))
    out_spec = dataclasses.replace(
        spec, side="out", type="full_update_out" if spec.kind == "full" else "delta_update_out",
        creation={"topic": in_state.topic, "heartbeat_s": heartbeat_s}, on_update=None)
    sockets = {"publisher": in_state.endpoints("subscriber", many=True)[0]}
    if in_state.has_address("requester"):  # a full-update in-state may ask no snapshots
        sockets["replyer"] = in_state.endpoints("requester", many=True)[0]
    addresses = {"states": {"out": {spec.name: sockets}}}
    return ServiceDefinition(name=name, module=types.ModuleType(name), config={},
                             addresses=addresses, connections={},
                             states={("out", spec.name): out_spec})
