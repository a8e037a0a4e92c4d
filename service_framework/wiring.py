"""Which sockets each connection and state needs: kind, address key, bind or connect (SPEC §5).

The one table of socket needs: components open their sockets from it, the loader checks
addresses against it, and the harness and replay plan free endpoints with it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Iterator, NamedTuple

from .transport.base import SocketKind

if TYPE_CHECKING:
    from .loader import ServiceDefinition


class SocketNeed(NamedTuple):
    key: str  # the address key: 'replyer', 'publisher', …
    kind: SocketKind
    binds: bool
    many: bool  # a connecting socket may be given a list of endpoints


class SocketEntry(NamedTuple):
    section: str  # 'connections' or 'states'
    side: str
    name: str
    key: str
    binds: bool
    many: bool


_OUT_STATE = (SocketNeed("publisher", SocketKind.XPUB, True, False),
              SocketNeed("replyer", SocketKind.ROUTER, True, False))
_IN_STATE = (SocketNeed("subscriber", SocketKind.SUB, False, True),
             SocketNeed("requester", SocketKind.DEALER, False, True))


def socket_needs(section: str, side: str, spec: Any) -> tuple[SocketNeed, ...]:
    """The sockets of one connection or state, from its type and creation arguments."""
    if section == "states":
        return _OUT_STATE if side == "out" else _IN_STATE
    creation = spec.creation
    if spec.type == "replyer":
        return (SocketNeed("replyer", SocketKind.ROUTER, True, False),)
    if spec.type == "requester":
        return (SocketNeed("requester", SocketKind.DEALER, False, True),)
    if spec.type == "publisher":
        return (SocketNeed("publisher", SocketKind.XPUB,
                           not creation.get("is_x_pub", False), False),)
    if spec.type == "subscriber":
        binder = bool(creation.get("is_binder", False))
        return (SocketNeed("subscriber", SocketKind.SUB, binder, not binder),)
    return ()  # external_target: no socket


def socket_plan(definition: "ServiceDefinition") -> Iterator[SocketEntry]:
    for section, specs in (("connections", definition.connections),
                           ("states", definition.states)):
        for (side, name), spec in specs.items():
            for need in socket_needs(section, side, spec):
                yield SocketEntry(section, side, name, need.key, need.binds, need.many)


def plan_addresses(definition: "ServiceDefinition",
                   endpoint: Callable[[SocketEntry], str]) -> dict:
    """An addresses mapping (SPEC §5) that gives each socket of the plan `endpoint(entry)`."""
    addresses: dict = {}
    for entry in socket_plan(definition):
        slot = addresses.setdefault(entry.section, {}).setdefault(entry.side, {})
        slot.setdefault(entry.name, {})[entry.key] = ([endpoint(entry)] if entry.many
                                                      else endpoint(entry))
    return addresses
