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
import itertools
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


def _unique(name: str, taken: list[str], hint: str) -> str:
    """`name`, or with `hint` (or a number) when another node has it already: two
    instances of one service, or two `svc.json` in different folders, stay two nodes."""
    if name not in taken:
        return name
    candidates = itertools.chain([f"{name} ({hint})"],
                                 (f"{name} #{n}" for n in itertools.count(2)))
    return next(c for c in candidates if c not in taken)


def _from_addresses(path: Path, service: str) -> list[Socket]:
    addresses = load_addresses(str(path))
    sockets = []
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


# As libzmq resolves them for our sockets: `*` and 0.0.0.0 bind IPv4 only (ZMQ_IPV6 is set
# for bracketed endpoints alone), `[::]` binds both families; `localhost` is 127.0.0.1.
_ANY_IPV4, _ANY_HOST, _ALIASES = ("*", "0.0.0.0"), "[::]", {"localhost": "127.0.0.1"}


def _place(endpoint: str) -> tuple[tuple[str, str], str]:
    """(what binds that may meet share: the tcp port, or the whole endpoint; the host)."""
    if not endpoint.startswith("tcp://"):
        return ("", endpoint), ""
    host, _, port = endpoint.removeprefix("tcp://").rpartition(":")
    return ("tcp", port), _ALIASES.get(host, host)


def _reaches(bound_host: str, host: str) -> bool:
    """Whether a connect to `host` reaches a bind on `bound_host` (at the same port)."""
    return (bound_host == host or bound_host == _ANY_HOST
            or (bound_host in _ANY_IPV4 and not host.startswith("[")))


def _bind_index(sockets: list[Socket]) -> dict[tuple[str, str], list[Socket]]:
    """Binding sockets by port (tcp) or endpoint: one lookup per connecting socket."""
    index: dict[tuple[str, str], list[Socket]] = {}
    for socket in sockets:
        if socket.binds:
            index.setdefault(_place(socket.endpoint)[0], []).append(socket)
    return index


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
            path = addresses[min(number, len(addresses) - 1)]
            name, found = _from_service(service, path, config)
            unique = _unique(name, names, path.stem)  # its addresses say which
            names.append(unique)
            sockets += [socket._replace(service=unique) for socket in found]
    else:
        for path in addresses:
            names.append(_unique(_node_name(path), names, path.parent.name))
            sockets += _from_addresses(path, names[-1])
    for number, (xsub, xpub) in enumerate(proxies):
        proxy = f"proxy{number + 1}" if len(proxies) > 1 else "proxy"
        names.append(proxy)
        sockets += [Socket(proxy, "connections", "in", "xsub", "subscriber", xsub, True, "--proxy"),
                    Socket(proxy, "connections", "out", "xpub", "publisher", xpub, True,
                           "--proxy")]
    index = _bind_index(sockets)
    problems = _duplicate_binds(index)
    links, dangling = [], []
    for socket in sockets:
        if socket.binds:
            continue
        where, host = _place(socket.endpoint)
        reached = [other for other in index.get(where, ())
                   if _reaches(_place(other.endpoint)[1], host)]
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


def _duplicate_binds(index: dict[tuple[str, str], list[Socket]]) -> list[str]:
    """Binds of which the second fails on one host: one endpoint, or one port where one of
    the two is a wildcard that covers the other's address."""
    problems = []
    for (scheme, port), binds in index.items():
        if port == "*":  # a port libzmq picks: never another's
            continue
        hosts = [_place(socket.endpoint)[1] for socket in binds]
        for number, (socket, host) in enumerate(zip(binds, hosts, strict=True)):
            earlier = zip(binds[:number], hosts[:number], strict=True)
            first = next((other for other, theirs in earlier
                          if not scheme or _reaches(theirs, host) or _reaches(host, theirs)),
                         None)
            if first is not None:
                also = "" if first.endpoint == socket.endpoint else f" ({first.endpoint})"
                problems.append(f"duplicate bind: {socket.endpoint} is bound by {first.where}"
                                f"{also} and by {socket.where}")
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


def _text(text: str) -> str:
    """Text inside a quoted Mermaid label: its own entity codes for what would end it."""
    return (text.replace("#", "#35;").replace('"', "#quot;").replace("<", "#lt;")
            .replace(">", "#gt;"))


def mermaid(topology: Topology) -> str:
    # Node ids are numbers: names are only ever shown (any name is a valid label).
    ids = {name: f"s{number}" for number, name in enumerate(topology.services)}
    lines = ["flowchart LR"]
    for name in topology.services:
        lines.append(f'  {ids[name]}["{_text(name)}"]')
    for link in topology.links:
        if link.kind == "snapshot":
            continue  # the state's link says it; a snapshot pair goes the same way
        bound = link.receiver if link.receiver.binds else link.sender
        label = f"{_text(link.sender.name)} ({link.kind})<br/>{_text(bound.endpoint)}"
        arrow = "==>" if link.kind == "state" else "-->"
        lines.append(f'  {ids[link.sender.service]} {arrow}|"{label}"| '
                     f'{ids[link.receiver.service]}')
    for number, socket in enumerate(topology.dangling):
        lines.append(f'  missing{number}(["nothing at {_text(socket.endpoint)}"])')
        lines.append(f'  {ids[socket.service]} -.->|"{_text(socket.name)}"| missing{number}')
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
        if len(options.configs) > len(options.services):
            raise ConfigError(f"{len(options.configs)} -c for {len(options.services)} -s: a "
                              "config belongs to the service given at the same place")
        proxies = [(normalize_endpoint(a, where="--proxy"), normalize_endpoint(b, where="--proxy"))
                   for a, b in options.proxy]
        topology = build([Path(p) for p in options.addresses], options.services,
                         options.configs, proxies)
    except (ConfigError, ModelError, OSError) as error:
        print(f"service_framework topology: error: {error}", file=sys.stderr)
        return EXIT_LOAD_ERROR
    text = mermaid(topology)
    if options.html:
        try:
            Path(options.html).write_text(html_page(topology, text))
        except OSError as error:
            print(f"service_framework topology: error: --html: cannot write {options.html}: "
                  f"{error.strerror or error}", file=sys.stderr)
            return EXIT_LOAD_ERROR
    print(text, end="")
    for problem in topology.problems:
        print(problem, file=sys.stderr)
    return EXIT_PROBLEMS if topology.problems else EXIT_OK
