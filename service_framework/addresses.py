"""Addresses: where each socket of a service binds or connects.

The file is the README's JSON::

    {"connections": {"in": {name: {socket_key: endpoint}}, "out": {...}},
     "states": {"in": {...}, "out": {...}},
     "security": {...}}            # optional, read by the security layer, not here

Which sockets each connection and state needs — kind, address key, bind or connect — is
one table here (`socket_needs`): components open their sockets from it, the loader checks
the addresses against it, and the harness and replay plan free endpoints with it.

An endpoint is ``host:port`` (meaning ``tcp://host:port``) or a full ZMQ endpoint
(``tcp://``, ``ipc://``, ``inproc://``). Nothing here ever defaults to all interfaces: a
binding socket binds exactly the host it is given (``*`` or ``0.0.0.0`` only if written).

``load_addresses`` returns an :class:`Addresses` (a ``dict`` subclass) whose ``source``
attribute names the file it came from, so later errors can name the file; ``endpoints``
uses it, or an explicit ``source=`` argument, and works with plain dicts as well (as
returned by ``setup_addresses``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Callable, Iterator, NamedTuple

from .config.files import read_json
from .errors import ConfigError
from .transport.base import SocketKind

if TYPE_CHECKING:
    from .loader import ServiceDefinition

__all__ = ["Addresses", "endpoints", "load_addresses", "normalize_endpoint", "socket_needs",
           "socket_plan", "plan_addresses"]

SECTIONS = ("connections", "states")
SIDES = ("in", "out")
_TOP_LEVEL = (*SECTIONS, "security")
_SCHEMES = ("tcp://", "ipc://", "inproc://")


class Addresses(dict):
    """The addresses mapping, remembering the file it was read from (``source``)."""

    def __init__(self, *args: object, source: str | None = None, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.source = source


def load_addresses(source: str | os.PathLike | Mapping | None) -> dict:
    """Load and check addresses from a JSON file path or a dict (None gives ``{}``).

    Every endpoint is checked now, so a bad address fails at load time, before anything
    binds. The values are returned as given; ``endpoints`` normalizes them.
    """
    if source is None:
        return Addresses()
    if isinstance(source, Mapping):
        data, origin = source, None
    elif isinstance(source, (str, os.PathLike)):
        origin = os.fspath(source)
        data = read_json(origin, "addresses file")
    else:
        raise ConfigError(f"addresses: expected a file path or a dict, "
                          f"got {type(source).__name__}")
    _check_shape(data, origin)
    return Addresses(data, source=origin)


def _check_shape(data: object, origin: str | None) -> None:
    prefix = f"addresses file {origin}: " if origin else "addresses: "
    if not isinstance(data, Mapping):
        raise ConfigError(f"{prefix}expected a JSON object, got {type(data).__name__}")
    for top, sides in data.items():
        if top not in _TOP_LEVEL:  # a typo ("connection") would silently lose addresses
            raise ConfigError(f"{prefix}unknown section {top!r} "
                              f"(expected {', '.join(map(repr, _TOP_LEVEL))})")
        if top == "security":
            continue
        _expect_mapping(sides, top, prefix)
        for side, names in sides.items():
            if side not in SIDES:
                raise ConfigError(f"{prefix}{top}.{side}: unknown side (expected 'in' or 'out')")
            _expect_mapping(names, f"{top}.{side}", prefix)
            for name, sockets in names.items():
                _expect_mapping(sockets, f"{top}.{side}.{name}", prefix)
                for key, value in sockets.items():
                    path = f"{top}.{side}.{name}.{key}"
                    for item in value if isinstance(value, list) else [value]:
                        normalize_endpoint(item, where=prefix + path)


def _expect_mapping(value: object, path: str, prefix: str) -> None:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{prefix}{path}: expected an object, got {type(value).__name__}")


def normalize_endpoint(value: str, *, where: str) -> str:
    """Return the full ZMQ endpoint for `value`; ConfigError naming `where` if it is bad.

    ``host:port`` becomes ``tcp://host:port``; ``*`` and ``0.0.0.0`` are kept as given. The
    port is 1-65535, or ``*`` (ZMQ picks a free port when binding). IPv6 hosts are
    written in brackets: ``[::1]:5555``.
    """
    if not isinstance(value, str):
        raise ConfigError(f"{where}: an endpoint must be a string, got {type(value).__name__}")
    text = value.strip()
    if not text:
        raise ConfigError(f"{where}: empty endpoint")
    if text.startswith(("ipc://", "inproc://")):
        if not text.split("://", 1)[1]:
            raise ConfigError(f"{where}: endpoint {value!r} has no path or name")
        return text
    if "://" in text and not text.startswith("tcp://"):
        raise ConfigError(f"{where}: endpoint {value!r} has an unsupported scheme "
                          f"(use host:port, {', '.join(_SCHEMES)})")
    address = text.removeprefix("tcp://")
    host, colon, port = address.rpartition(":")
    if not colon or not host:
        raise ConfigError(f"{where}: endpoint {value!r} needs a host and a port (host:port)")
    if any(c.isspace() for c in host) or "/" in host or (":" in host and not (
            host.startswith("[") and host.endswith("]"))):
        raise ConfigError(f"{where}: endpoint {value!r} has an invalid host {host!r}")
    if port != "*":
        if not port.isdigit() or not port.isascii():
            raise ConfigError(f"{where}: endpoint {value!r} has a non-numeric port {port!r}")
        if not 1 <= int(port) <= 65535:
            raise ConfigError(f"{where}: endpoint {value!r} has port {port} out of range "
                              f"(1-65535)")
    return f"tcp://{host}:{port}"


def endpoints(addresses: Mapping, section: str, side: str, name: str, key: str, *,
              many: bool = False, source: str | None = None) -> list[str]:
    """The normalized endpoints at ``addresses[section][side][name][key]``.

    The value is one endpoint string, or with ``many=True`` a non-empty list of them (a
    one-item list is also accepted when ``many`` is False). A missing address is a
    ConfigError "missing address connections.in.echo.replyer" (plus the file, taken from
    `source` or from ``addresses.source``).
    """
    if section not in SECTIONS or side not in SIDES:
        raise ValueError(f"bad address lookup {section}.{side} "
                         f"(section is {SECTIONS}, side is {SIDES})")
    source = source or getattr(addresses, "source", None)
    path = f"{section}.{side}.{name}.{key}"
    in_file = f" in {source}" if source else ""
    node: object = addresses
    for part in (section, side, name, key):
        if not isinstance(node, Mapping) or part not in node:
            raise ConfigError(f"missing address {path}{in_file}")
        node = node[part]
    where = f"{source}: {path}" if source else path
    if isinstance(node, (list, tuple)):
        if not node:
            raise ConfigError(f"{where}: an empty list of endpoints")
        if not many and len(node) > 1:
            raise ConfigError(f"{where}: this socket takes one endpoint, got {len(node)}")
        found = [normalize_endpoint(item, where=f"{where}[{i}]") for i, item in enumerate(node)]
        # Listed twice, a replica would take two turns and a publisher's messages come twice.
        for i, endpoint in enumerate(found):
            first = found.index(endpoint)
            if first != i:
                raise ConfigError(f"{where}[{i}]: {endpoint} is listed twice (also at [{first}])")
        return found
    return [normalize_endpoint(node, where=where)]  # type: ignore[arg-type]


class SocketNeed(NamedTuple):
    key: str  # the address key: 'replyer', 'publisher', …
    kind: SocketKind
    binds: bool
    many: bool  # a connecting socket may be given a list of endpoints
    optional: bool = False  # a full-update state's snapshot pair (as in 0.0.12)


class SocketEntry(NamedTuple):
    section: str  # 'connections' or 'states'
    side: str
    name: str
    key: str
    binds: bool
    many: bool
    optional: bool = False


_OUT_STATE = (SocketNeed("publisher", SocketKind.XPUB, True, False),
              SocketNeed("replyer", SocketKind.ROUTER, True, False))
_IN_STATE = (SocketNeed("subscriber", SocketKind.SUB, False, True),
             SocketNeed("requester", SocketKind.DEALER, False, True))


def socket_needs(section: str, side: str, spec: Any) -> tuple[SocketNeed, ...]:
    """The sockets of one connection or state, from its type and creation arguments."""
    if section == "states":
        if side == "out" and spec.creation.get("is_x_pub", False):
            # publishing into an XPUB/XSUB bus: connect to its XSUB side; snapshots are
            # still served from this service's own replyer
            return (SocketNeed("publisher", SocketKind.XPUB, False, False),
                    _OUT_STATE[1]._replace(optional=spec.kind == "full"))
        needs = _OUT_STATE if side == "out" else _IN_STATE
        if spec.kind == "full":  # every update is a whole value: snapshots are a bonus
            needs = (needs[0], needs[1]._replace(optional=True))
        return needs
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
                yield SocketEntry(section, side, name, need.key, need.binds, need.many,
                                  need.optional)


def has_address(addresses: Mapping, section: str, side: str, name: str, key: str) -> bool:
    """Whether the addresses name an endpoint (right or wrong) under that key."""
    node: object = addresses
    for part in (section, side, name, key):
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return True


def plan_addresses(definition: "ServiceDefinition",
                   endpoint: Callable[[SocketEntry], str]) -> dict:
    """An addresses mapping (SPEC §5) that gives each socket of the plan `endpoint(entry)`."""
    addresses: dict = {}
    for entry in socket_plan(definition):
        slot = addresses.setdefault(entry.section, {}).setdefault(entry.side, {})
        slot.setdefault(entry.name, {})[entry.key] = ([endpoint(entry)] if entry.many
                                                      else endpoint(entry))
    return addresses
