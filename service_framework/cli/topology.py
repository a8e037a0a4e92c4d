"""`service_framework topology ADDRESSES… [-s SERVICE…]`: a picture of the system.

Reads addresses files (and, with `-s`, the services' models; nothing binds or runs) and
prints the services, their connections and states and the endpoints that join them as
Mermaid text; `--html FILE` writes a self-contained page with the picture drawn as SVG.
It reports what would go wrong when the system starts:

- dangling endpoints: a socket connecting where nothing binds (a requester pointing at no
  replyer);
- duplicate binds: two sockets binding one endpoint (the second fails to start);
- with service files, model mismatches between the two ends of a link: what a requester
  sends against what its replyer accepts (and the reply back), a publisher's messages
  against its subscribers', an out-state's value against its in-states'.

Services pair with addresses files by position when as many are given (`-s a.py -s b.py
A.json B.json`), or all use the one addresses file given. Without `-s`, each addresses
file is one node. Exit status: 0 when nothing is reported, 1 when a problem is, 2 when a
file cannot be read.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any, NamedTuple, Sequence

from ..addresses import (
    SECTIONS,
    SIDES,
    endpoints,
    load_addresses,
    normalize_endpoint,
    socket_plan,
)
from ..errors import ConfigError, ModelError
from ..loader import load_service
from ..wire.forms import type_name
from .topology_svg import html_page

EXIT_OK, EXIT_PROBLEMS, EXIT_LOAD_ERROR = 0, 1, 2
# Without the service's models, which side of an address binds: what 0.0.12 and the
# README's addresses do (a publisher with is_x_pub, or a subscriber with is_binder, is the
# other way round: give -s to see those).
_BINDS = {("connections", "in", "replyer"): True, ("connections", "out", "requester"): False,
          ("connections", "out", "publisher"): True, ("connections", "in", "subscriber"): False,
          ("states", "out", "publisher"): True, ("states", "out", "replyer"): True,
          ("states", "in", "subscriber"): False, ("states", "in", "requester"): False}
# Which connecting key meets which binding key: (section of the connecting side, its key,
# its side) -> what it talks to, and the link's kind.
_PEERS = {("connections", "out", "requester"): (("connections", "in", "replyer"), "request"),
          ("connections", "in", "subscriber"): (("connections", "out", "publisher"), "publish"),
          ("states", "in", "subscriber"): (("states", "out", "publisher"), "state"),
          ("states", "in", "requester"): (("states", "out", "replyer"), "snapshot")}


class Socket(NamedTuple):
    service: str
    section: str
    side: str
    name: str
    key: str
    endpoint: str
    binds: bool
    source: str
    spec: Any = None  # the connection or state spec, when the service file was given

    @property
    def where(self) -> str:
        return f"{self.source}: {self.section}.{self.side}.{self.name}.{self.key}"


class Link(NamedTuple):
    sender: Socket  # where data comes from: a requester, a publisher, an out-state
    receiver: Socket
    kind: str


class Topology(NamedTuple):
    services: list[str]
    sockets: list[Socket]
    links: list[Link]
    problems: list[str]
    dangling: list[Socket]  # connecting sockets that reach no bind


def _node_name(path: Path) -> str:
    return f"{path.parent.name}/{path.stem}" if path.stem == "addresses" else path.stem


def _from_addresses(path: Path) -> list[Socket]:
    addresses = load_addresses(str(path))
    service, sockets = _node_name(path), []
    for section in SECTIONS:
        for side in SIDES:
            for name, keys in (addresses.get(section, {}).get(side, {}) or {}).items():
                for key in keys:
                    binds = _BINDS.get((section, side, key))
                    if binds is None:
                        raise ConfigError(f"{path}: {section}.{side}.{name}: unknown address "
                                          f"key {key!r}")
                    for endpoint in endpoints(addresses, section, side, name, key, many=True):
                        sockets.append(Socket(service, section, side, name, key, endpoint,
                                              binds, str(path)))
    return sockets


def _from_service(service: str, addresses: Path,
                  config: str | None = None) -> tuple[str, list[Socket]]:
    definition = load_service(service, addresses=str(addresses), config=config)
    specs = {("connections", *key): spec for key, spec in definition.connections.items()}
    specs.update({("states", *key): spec for key, spec in definition.states.items()})
    sockets = []
    for entry in socket_plan(definition):
        try:
            found = endpoints(definition.addresses, entry.section, entry.side, entry.name,
                              entry.key, many=True)
        except ConfigError:
            if entry.optional:
                continue
            raise
        for endpoint in found:
            sockets.append(Socket(definition.name, entry.section, entry.side, entry.name,
                                  entry.key, endpoint, entry.binds, str(addresses),
                                  specs[(entry.section, entry.side, entry.name)]))
    return definition.name, sockets


def _matches(bound: str, wanted: str) -> bool:
    """Whether a connect to `wanted` reaches a bind on `bound` (`*`/0.0.0.0: any host)."""
    if bound == wanted:
        return True
    match = re.fullmatch(r"tcp://(\*|0\.0\.0\.0):(\d+)", bound)
    return bool(match) and wanted.startswith("tcp://") and \
        wanted.rpartition(":")[2] == match.group(2)


def build(addresses: Sequence[Path], services: Sequence[str] = (),
          configs: Sequence[str] = (),
          proxies: Sequence[tuple[str, str]] = ()) -> Topology:
    sockets: list[Socket] = []
    names: list[str] = []
    if services:
        if len(addresses) not in (1, len(services)):
            raise ConfigError(f"{len(services)} services and {len(addresses)} addresses "
                              "files: give one addresses file, or one per service")
        for number, service in enumerate(services):
            config = configs[number] if number < len(configs) else None
            name, found = _from_service(service, addresses[min(number, len(addresses) - 1)],
                                        config)
            names.append(name)
            sockets += found
    else:
        for path in addresses:
            names.append(_node_name(path))
            sockets += _from_addresses(path)
    for number, (xsub, xpub) in enumerate(proxies):
        proxy = f"proxy{number + 1}" if len(proxies) > 1 else "proxy"
        names.append(proxy)
        sockets += [Socket(proxy, "connections", "in", "xsub", "subscriber", xsub, True, "--proxy"),
                    Socket(proxy, "connections", "out", "xpub", "publisher", xpub, True,
                           "--proxy")]
    problems = _duplicate_binds(sockets)
    links, dangling = [], []
    for socket in sockets:
        if socket.binds:
            continue
        reached = [other for other in sockets if other.binds and _matches(other.endpoint,
                                                                           socket.endpoint)]
        if not reached:
            dangling.append(socket)
            problems.append(f"dangling: {socket.where} connects to {socket.endpoint}, where "
                            "nothing binds")
        for other in reached:
            if socket.key == "publisher":  # is_x_pub: a publisher into a proxy
                links.append(Link(socket, other, "publish"))
                continue
            peer = _PEERS.get((socket.section, socket.side, socket.key))
            kind = peer[1] if peer and peer[0] == (other.section, other.side, other.key) \
                else "publish" if other.source == "--proxy" else None
            if kind is None:
                problems.append(f"mismatch: {socket.where} connects to {socket.endpoint}, "
                                f"where {other.where} binds (a {other.key}, not what a "
                                f"{socket.key} talks to)")
                continue
            sender, receiver = (socket, other) if kind == "request" else (other, socket)
            links.append(Link(sender, receiver, kind))
            problems += _model_mismatches(sender, receiver, kind)
    return Topology(names, sockets, links, problems, dangling)


def _duplicate_binds(sockets: list[Socket]) -> list[str]:
    problems, seen = [], {}
    for socket in sockets:
        if not socket.binds:
            continue
        first = seen.setdefault(socket.endpoint, socket)
        if first is not socket:
            problems.append(f"duplicate bind: {socket.endpoint} is bound by {first.where} "
                            f"and by {socket.where}")
    return problems


def _compare(sent: Any, accepted: Any, what: str) -> list[str]:
    """What a receiver checking with `accepted` would refuse of values checked by `sent`."""
    if sent is None or accepted is None:
        return []
    problems = []
    for key in sorted(sent.keys - accepted.keys):
        problems.append(f"{what}: sends {key!r}, which the other end does not accept")
    for key in sorted(set(accepted.required) - set(sent.required)):
        how = "may omit" if key in sent.optional else "never sends"
        problems.append(f"{what}: {how} {key!r}, which the other end requires")
    for key in sorted(sent.keys & accepted.keys):
        ours, theirs = type_name(sent.forms[key]), type_name(accepted.forms[key])
        if ours != theirs:
            problems.append(f"{what}: {key!r} is sent as {ours}, the other end expects {theirs}")
    return problems


def _model_mismatches(sender: Socket, receiver: Socket, kind: str) -> list[str]:
    if sender.spec is None or receiver.spec is None or kind == "snapshot":
        return []
    link = f"model mismatch, {sender.service}.{sender.name} -> {receiver.service}.{receiver.name}"
    if kind == "state":
        return _compare(sender.spec.value, receiver.spec.value, link)
    problems = _compare(sender.spec.args, receiver.spec.args, link)
    if kind == "request":
        problems += _compare(receiver.spec.returns, sender.spec.returns, f"{link} (reply)")
    return problems


def _ident(name: str) -> str:
    return re.sub(r"\W", "_", name)


def mermaid(topology: Topology) -> str:
    lines = ["flowchart LR"]
    for name in topology.services:
        lines.append(f'  {_ident(name)}["{name}"]')
    for link in topology.links:
        if link.kind == "snapshot":
            continue  # the state's link says it; a snapshot pair goes the same way
        bound = link.receiver if link.receiver.binds else link.sender
        label = f"{link.sender.name} ({link.kind})<br/>{bound.endpoint}"
        arrow = "==>" if link.kind == "state" else "-->"
        lines.append(f'  {_ident(link.sender.service)} {arrow}|"{label}"| '
                     f'{_ident(link.receiver.service)}')
    for number, socket in enumerate(topology.dangling):
        lines.append(f'  missing{number}(["nothing at {socket.endpoint}"])')
        lines.append(f'  {_ident(socket.service)} -.->|"{socket.name}"| missing{number}')
        lines.append(f"  style missing{number} stroke:#c00,stroke-dasharray: 4")
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="service_framework topology",
        description="Draw services, connections, states and endpoints (Mermaid, or an HTML "
                    "page), and report dangling endpoints, duplicate binds and model "
                    "mismatches. Exit status: 0 clean, 1 problems reported, 2 unreadable.")
    parser.add_argument("addresses", nargs="+", metavar="ADDRESSES",
                        help="addresses files (one per service given with -s, or one for all)")
    parser.add_argument("-s", dest="services", action="append", default=[],
                        metavar="SERVICE", help="a service file (repeat); its models are read")
    parser.add_argument("-c", dest="configs", action="append", default=[],
                        metavar="CONFIG", help="the config file of the -s at the same place "
                                               "(for services whose config_model requires keys)")
    parser.add_argument("--proxy", nargs=2, action="append", default=[],
                        metavar=("XSUB", "XPUB"), help="a `service_framework proxy` there")
    parser.add_argument("--html", metavar="FILE", help="also write a self-contained HTML page")
    return parser


def main(argv: Sequence[str]) -> int:
    options = build_parser().parse_args(list(argv))
    try:
        proxies = [(normalize_endpoint(a, where="--proxy"), normalize_endpoint(b, where="--proxy"))
                   for a, b in options.proxy]
        topology = build([Path(p) for p in options.addresses], options.services,
                         options.configs, proxies)
    except (ConfigError, ModelError, OSError) as error:
        print(f"service_framework topology: error: {error}", file=sys.stderr)
        return EXIT_LOAD_ERROR
    text = mermaid(topology)
    print(text, end="")
    if options.html:
        Path(options.html).write_text(html_page(topology, text))
    for problem in topology.problems:
        print(problem, file=sys.stderr)
    return EXIT_PROBLEMS if topology.problems else EXIT_OK
