"""What connections and states share: sockets from the addresses file, timers, closing."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .addresses import endpoints
from .transport.base import Socket, SocketKind

if TYPE_CHECKING:
    from .runtime import Runtime


class Component:
    """A connection or a state of one service. Subclasses open sockets in `open()`."""

    section = "connections"

    def __init__(self, spec: Any, runtime: "Runtime") -> None:
        self.spec = spec
        self.name: str = spec.name
        self.side: str = spec.side
        self.runtime = runtime
        self.sockets: list[Socket] = []

    @property
    def label(self) -> str:
        kind = "connection" if self.section == "connections" else "state"
        return f"{kind} {self.name!r}"

    def endpoints(self, key: str, *, many: bool = False) -> list[str]:
        return endpoints(self.runtime.definition.addresses, self.section, self.side, self.name,
                         key, many=many)

    def open_socket(self, kind: SocketKind, key: str, *, bind: bool, many: bool = False,
                    hwm: int = 1000) -> Socket:
        """A socket bound or connected to this component's addresses under `key`."""
        socket = self.runtime.transport.socket(kind, owner=f"{self.runtime.name}.{self.name}",
                                               hwm=hwm)
        self.sockets.append(socket)
        security = self.runtime.definition.security
        if security is not None:  # CurveZMQ (SPEC §15): before any bind or connect
            security.secure(socket, self.section, self.name, bind=bind)
        for endpoint in self.endpoints(key, many=many):
            if bind:
                self.bound_endpoint = socket.bind(endpoint)
            else:
                socket.connect(endpoint)
        return socket

    def close_socket(self, socket: Socket) -> None:
        self.runtime.unwatch(socket)
        socket.close()
        if socket in self.sockets:
            self.sockets.remove(socket)

    def open(self) -> None:
        """Creates, binds and connects this component's sockets."""

    def close(self) -> None:
        for socket in list(self.sockets):
            self.close_socket(socket)

    def next_deadline(self) -> float | None:
        return None

    def on_timer(self, now: float) -> None:
        """Runs when `next_deadline()` has passed."""
