"""What both transports share about CurveZMQ: who is refused, logging it once, key files.

A transport applies the allow-list of a ZAP domain (one per secured service) when a client
connects to a CURVE server socket. A refused peer gets nothing, and an operator gets one
warning per (domain, client key) — a refused client retries every reconnect interval, so a
warning per attempt would flood the log. Only public keys ever reach this module.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Collection

import zmq.auth

from ..logs import get_logger

log = get_logger()

# Distinct refused keys remembered per transport; past this, one last warning and silence
# (a peer cycling through fresh keys must not grow memory or the log without bound).
MAX_REMEMBERED = 1024


class AllowLists:
    """The allow-list of every secured service's ZAP domain, and the refusals seen.

    Thread-safe: the ZMQ authenticator asks from its own thread.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._domains: dict[str, tuple[frozenset[bytes], int]] = {}
        self._refused: set[tuple[str, bytes]] = set()
        self._overflowed = False

    def add(self, domain: str, allowed: Collection[bytes]) -> bool:
        """Registers one more socket of `domain`; True when the domain is new."""
        keys = frozenset(bytes(key) for key in allowed)
        with self._lock:
            known = self._domains.get(domain)
            if known is not None and known[0] != keys:
                raise ValueError(f"ZAP domain {domain!r} is already used with another "
                                 "allow-list")
            self._domains[domain] = (keys, (known[1] if known else 0) + 1)
            return known is None

    def remove(self, domain: str) -> bool:
        """Forgets one socket of `domain`; True when it was the last one."""
        with self._lock:
            known = self._domains.get(domain)
            if known is None:
                return False
            if known[1] > 1:
                self._domains[domain] = (known[0], known[1] - 1)
                return False
            del self._domains[domain]
            self._refused = {item for item in self._refused if item[0] != domain}
            return True

    @property
    def empty(self) -> bool:
        with self._lock:
            return not self._domains

    def allows(self, domain: str, client_public: bytes) -> bool:
        """Whether `client_public` (Z85) may talk to the CURVE servers of `domain`.

        An unknown domain and an empty allow-list refuse everyone. A refusal is logged
        once per (domain, key).
        """
        client_public = bytes(client_public)
        with self._lock:
            known = self._domains.get(domain)
            if known is not None and client_public in known[0]:
                return True
            first = self._remember(domain, client_public)
        if first:
            log.warning("CurveZMQ: %s refused a client whose public key %s is not on its "
                        "allow-list; it gets nothing (further attempts with this key are "
                        "not logged)", _service(domain), client_public.decode("ascii", "replace"))
        elif first is None:
            log.warning("CurveZMQ: more than %d distinct refused client keys; further "
                        "refusals are not logged", MAX_REMEMBERED)
        return False

    def _remember(self, domain: str, key: bytes) -> bool | None:
        """True for a new refusal, False for a known one, None the first time memory is full."""
        item = (domain, key)
        if item in self._refused:
            return False
        if len(self._refused) >= MAX_REMEMBERED:
            if self._overflowed:
                return False
            self._overflowed = True
            return None
        self._refused.add(item)
        return True


def _service(domain: str) -> str:
    """`echo` or `echo#2` (a second service of that name in this process) → a readable name."""
    return f"service {domain!r}"


def write_key_files(folder: str | os.PathLike, name: str) -> None:
    """Writes a new Curve25519 key pair as ZMQ certificates: `folder/name.key` (public)
    and `folder/name.key_secret` (both keys), as pyzmq writes them."""
    zmq.auth.create_certificates(folder, name)
