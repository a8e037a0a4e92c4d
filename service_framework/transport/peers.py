"""Sockets that talk to services from outside them — a test harness, a replay — on any
transport: one per (purpose, name), bound or connected to one endpoint, each with its own
poller, all closed together."""

from __future__ import annotations

from .base import Poller, Socket, SocketKind, Transport


class Peers:
    """The outside sockets of one owner (`harness`, `replay`), made on first use."""

    def __init__(self, transport: Transport, owner: str) -> None:
        self.transport = transport
        self.owner = owner
        self._open: dict[tuple[str, str], tuple[Socket, Poller]] = {}

    def get(self, key: tuple[str, str], kind: SocketKind, endpoint: str, *,
            bind: bool) -> tuple[Socket, Poller]:
        """The socket for `key` (purpose, name) and its poller; an OSError of the bind or
        connect leaves nothing open."""
        if key not in self._open:
            owner = f"{self.owner}.{key[1]}"
            socket = self.transport.socket(kind, owner=owner)
            try:
                socket.bind(endpoint) if bind else socket.connect(endpoint)
            except OSError:
                socket.close()
                raise
            poller = self.transport.poller(owner=owner)
            poller.register(socket)
            self._open[key] = (socket, poller)
        return self._open[key]

    def close(self) -> None:
        for socket, poller in self._open.values():
            poller.close()
            socket.close()
        self._open.clear()
