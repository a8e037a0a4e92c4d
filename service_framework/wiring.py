"""Which sockets each connection and state needs, under which address key (SPEC §5)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Iterator, NamedTuple

if TYPE_CHECKING:
    from .loader import ServiceDefinition


class SocketEntry(NamedTuple):
    section: str  # 'connections' or 'states'
    side: str
    name: str
    key: str
    binds: bool
    many: bool


def _connection_entries(spec) -> list[tuple[str, bool, bool]]:
    creation = spec.creation
    return {
        "replyer": [("replyer", True, False)],
        "requester": [("requester", False, True)],
        "publisher": [("publisher", not creation.get("is_x_pub", False), False)],
        "subscriber": [("subscriber", bool(creation.get("is_binder", False)),
                        not creation.get("is_binder", False))],
        "external_target": [],
    }[spec.type]


def socket_plan(definition: "ServiceDefinition") -> Iterator[SocketEntry]:
    for (side, name), spec in definition.connections.items():
        for key, binds, many in _connection_entries(spec):
            yield SocketEntry("connections", side, name, key, binds, many)
    for (side, name), _spec in definition.states.items():
        if side == "out":
            yield SocketEntry("states", side, name, "publisher", True, False)
            yield SocketEntry("states", side, name, "replyer", True, False)
        else:
            yield SocketEntry("states", side, name, "subscriber", False, True)
            yield SocketEntry("states", side, name, "requester", False, True)


def plan_addresses(definition: "ServiceDefinition",
                   endpoint: Callable[[SocketEntry], str]) -> dict:
    """An addresses mapping (SPEC §5) that gives each socket of the plan `endpoint(entry)`."""
    addresses: dict = {}
    for entry in socket_plan(definition):
        slot = addresses.setdefault(entry.section, {}).setdefault(entry.side, {})
        slot.setdefault(entry.name, {})[entry.key] = ([endpoint(entry)] if entry.many
                                                      else endpoint(entry))
    return addresses
