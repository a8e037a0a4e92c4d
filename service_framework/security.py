"""CurveZMQ for a service (SPEC §15): its key pair, its peers' keys, the clients it allows.

Security is off unless the addresses file has a ``security`` section; then every socket
the service binds is a CURVE server that only clients on its allow-list can reach (ZAP,
checked by an authenticator the transport runs), and every socket it connects is a CURVE
client that only talks to the server key it was given::

    {
      "connections": {...},
      "states": {...},
      "security": {
        "public_key": "keys/orders/orders.key",
        "secret_key": "keys/orders/orders.key_secret",
        "server_keys": {
          "prices": "keys/pricer/pricer.key",
          "book": "keys/books/books.key"
        },
        "allowed_clients": ["keys/gateway/gateway.key", "keys/clients/"]
      }
    }

- ``public_key`` / ``secret_key`` (required): this service's key pair, files written by
  ``service_framework --keygen DIR`` (``DIR/NAME.key`` and ``DIR/NAME.key_secret``).
- ``server_keys``: for every connection or state this service *connects* (requester,
  subscriber, in-state, ``is_x_pub`` publisher), the public key file of the service it
  connects to, by connection or state name (``"connections.NAME"`` / ``"states.NAME"``
  when a connection and a state share a name). All endpoints of one connection are served
  by the same key pair. Required for each connecting socket; an unknown name is an error.
- ``allowed_clients``: public key files (or folders: every ``*.key`` in them) of the
  clients allowed to reach the sockets this service *binds*. Required when it binds
  anything; ``[]`` refuses everyone.

Relative paths are resolved against the folder of the addresses file (the working
directory when addresses are given as a dict). Everything is read and checked when the
service loads, so ``--check`` reports a missing or malformed key file with its path. A
``setup_addresses`` hook may return its own ``security`` section; if its result has none,
the file's section still applies (a hook cannot turn security off by omission).

A secret key never appears in a log line, an error message, a repr, a trace or the
config: it lives only in a `KeyPair` and is handed to the transport's socket.
This module is transport-agnostic: sockets are secured through the `Socket` interface
(`secure_server` / `secure_client`); `keygen` has the transport write key files.
"""

from __future__ import annotations

import itertools
import os
import stat
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .config.files import read_bounded
from .errors import ConfigError
from .logs import get_logger
from .transport.curve import write_key_files

__all__ = ["KeyPair", "Security", "keygen", "load_security"]

log = get_logger()

SECTION_KEYS = ("public_key", "secret_key", "server_keys", "allowed_clients")
_Z85_ALPHABET = frozenset(b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                          b".-:+=^!/*?&<>()[]{}@%$#")
_KEY_LENGTH = 40  # a 32-byte Curve25519 key in Z85
MAX_KEY_FILE_BYTES = 64 * 1024  # a key file holds two 40-character keys and comments


# -- key files ------------------------------------------------------------------------------
def keygen(directory: str | os.PathLike, name: str | None = None) -> list[Path]:
    """Writes a new key pair into `directory`: ``NAME.key`` (public) and ``NAME.key_secret``
    (secret, mode 0600). `name` defaults to the folder's own name, so
    ``--keygen keys/orders`` gives ``keys/orders/orders.key``. Existing files are never
    overwritten (ConfigError). Returns the two paths, public first.
    """
    folder = Path(directory).expanduser()
    name = name or folder.resolve().name or "service"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(f"--keygen: cannot create folder {folder}: {error}") from None
    public, secret = folder / f"{name}.key", folder / f"{name}.key_secret"
    created: list[Path] = []
    try:
        # Created first, exclusively and with their final modes: pyzmq then only truncates
        # and fills them, so the secret is never readable by others, not even for a moment.
        for path, mode in ((public, 0o644), (secret, 0o600)):
            try:
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode))
            except FileExistsError:
                raise ConfigError(f"--keygen: {path} already exists; remove it or choose "
                                  "another folder") from None
            created.append(path)
        write_key_files(folder, name)  # writes exactly these two files
        os.chmod(secret, 0o600)
    except BaseException:
        for path in created:
            path.unlink(missing_ok=True)
        raise
    return [public, secret]


def _is_z85_key(value: bytes) -> bool:
    return len(value) == _KEY_LENGTH and all(byte in _Z85_ALPHABET for byte in value)


def read_key_file(path: Path, *, where: str, secret: bool = False) -> tuple[bytes, bytes | None]:
    """(public, secret) Z85 keys of a key file; ConfigError naming `where` and the path.

    With `secret=True` the file must hold a secret key too. Messages never quote a secret.
    """
    text = read_bounded(path, f"{where}: key file", max_bytes=MAX_KEY_FILE_BYTES)
    keys: dict[bytes, bytes] = {}
    for line in text.splitlines():
        line = line.strip()
        if line.startswith(b"#"):
            continue
        for field in (b"public-key", b"secret-key"):
            if line.startswith(field) and b"=" in line and field not in keys:
                keys[field] = line.split(b"=", 1)[1].strip(b" \t'\"")
    hint = "(expected a file written by service_framework --keygen)"
    public = keys.get(b"public-key")
    if public is None:
        raise ConfigError(f"{where}: key file {path} has no public-key {hint}")
    if not _is_z85_key(public):
        raise ConfigError(f"{where}: key file {path}: the public-key is not a "
                          f"{_KEY_LENGTH}-character Z85 key {hint}")
    if not secret:
        return public, None
    secret_key = keys.get(b"secret-key")
    if secret_key is None:
        raise ConfigError(f"{where}: key file {path} has no secret-key (is it the public "
                          "'.key' file? the secret one ends in '.key_secret')")
    if not _is_z85_key(secret_key):
        raise ConfigError(f"{where}: key file {path}: the secret-key is not a "
                          f"{_KEY_LENGTH}-character Z85 key {hint}")
    _warn_if_readable_by_others(path, where)
    return public, secret_key


def _warn_if_readable_by_others(path: Path, where: str) -> None:
    if os.name != "posix":
        return
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return
    if mode & 0o077:
        log.warning("%s: secret key file %s is accessible by other users (mode %04o); "
                    "chmod 600 it", where, path, mode)


class KeyPair:
    """A service's own key pair (Z85). The secret stays out of reprs, copies and pickles."""

    __slots__ = ("public", "_secret")

    def __init__(self, public: bytes, secret: bytes) -> None:
        self.public = public
        self._secret = secret

    @property
    def secret(self) -> bytes:
        return self._secret

    def __repr__(self) -> str:
        return f"KeyPair(public={self.public.decode()!r}, secret=<hidden>)"

    def __copy__(self) -> "KeyPair":
        return self

    def __deepcopy__(self, memo: dict) -> "KeyPair":
        return self

    def __reduce__(self):
        raise TypeError("a KeyPair holds a secret key and is not pickled")


# -- the section ----------------------------------------------------------------------------
_domain_lock = threading.Lock()
_domain_counts: dict[str, itertools.count] = {}


def _new_domain(service: str) -> str:
    """A ZAP domain per loaded service: ``name``, then ``name#2``… for a second one of that
    name in this process, so two services never share an allow-list."""
    with _domain_lock:
        number = next(_domain_counts.setdefault(service, itertools.count(1)))
    return service if number == 1 else f"{service}#{number}"


class Security:
    """The parsed ``security`` section of one service: what `Component.open_socket` applies."""

    def __init__(self, service: str, keys: KeyPair,
                 server_keys: Mapping[tuple[str, str], bytes],
                 allowed_clients: frozenset[bytes] | None, source: str | None) -> None:
        self.service = service
        self.domain = _new_domain(service)
        self.keys = keys
        self.server_keys = dict(server_keys)  # (section, name) -> the server's public key
        self.allowed_clients = allowed_clients  # None: the service binds nothing
        self.source = source

    def secure(self, socket: Any, section: str, name: str, *, bind: bool) -> None:
        """Makes `socket` a CURVE server (binding) or client (connecting); before bind/connect."""
        keys = self.keys
        if bind:
            socket.secure_server(keys.public, keys.secret, domain=self.domain,
                                 allowed=self.allowed_clients or frozenset())
            return
        server_public = self.server_keys.get((section, name))
        if server_public is None:
            raise ConfigError(f"security.server_keys: no server key for {section[:-1]} "
                              f"{name!r}, which connects{self._in_file()}")
        socket.secure_client(keys.public, keys.secret, server_public=server_public)

    def summary(self) -> str:
        allowed = ("binds nothing" if self.allowed_clients is None
                   else f"{len(self.allowed_clients)} allowed client key(s)")
        return (f"CurveZMQ, public key {self.keys.public.decode()}, "
                f"{len(self.server_keys)} server key(s), {allowed}")

    def _in_file(self) -> str:
        return f" (addresses file {self.source})" if self.source else ""

    def __repr__(self) -> str:
        allowed = None if self.allowed_clients is None else len(self.allowed_clients)
        return (f"Security(service={self.service!r}, domain={self.domain!r}, "
                f"public={self.keys.public.decode()!r}, server_keys={len(self.server_keys)}, "
                f"allowed_clients={allowed})")

    def __copy__(self) -> "Security":
        return self

    def __deepcopy__(self, memo: dict) -> "Security":
        return self


def load_security(section: Any, *, service: str, plan: Iterable[Any],
                  source: str | None = None) -> Security | None:
    """Parses and checks a ``security`` section against the service's sockets.

    `plan` is the service's socket plan (`addresses.socket_plan`): entries with `section`,
    `name` and `binds`. Returns None without a section. Every problem is a ConfigError
    naming the key (``security.server_keys.prices``) and the file.
    """
    if section is None:
        return None
    in_file = f" in addresses file {source}" if source else ""
    if not isinstance(section, Mapping):
        raise ConfigError(f"security{in_file}: expected an object, got {type(section).__name__}")
    for key in section:
        if key not in SECTION_KEYS:
            raise ConfigError(f"security.{key}{in_file}: unknown key (expected "
                              f"{', '.join(SECTION_KEYS)})")
    base = Path(source).expanduser().resolve().parent if source else Path.cwd()

    def path_of(value: Any, where: str) -> Path:
        if not isinstance(value, (str, os.PathLike)) or not os.fspath(value):
            raise ConfigError(f"{where}{in_file}: expected a key file path, got "
                              f"{type(value).__name__ if value != '' else 'an empty string'}")
        path = Path(value).expanduser()
        return path if path.is_absolute() else base / path

    def where(key: str) -> str:
        return f"security.{key}" + (f" ({source})" if source else "")

    for key in ("public_key", "secret_key"):
        if key not in section:
            raise ConfigError(f"security.{key}{in_file}: missing (this service's key pair, "
                              "made by service_framework --keygen DIR)")
    public, _ = read_key_file(path_of(section["public_key"], "security.public_key"),
                              where=where("public_key"))
    paired, secret = read_key_file(path_of(section["secret_key"], "security.secret_key"),
                                   where=where("secret_key"), secret=True)
    if paired != public:
        raise ConfigError(f"security.secret_key{in_file}: it is not the secret key of "
                          f"security.public_key (the two files are not one key pair)")
    entries = list(plan)
    server_keys = _server_keys(section.get("server_keys"), entries, path_of, where, in_file)
    binds = any(entry.binds for entry in entries)
    allowed = _allowed_clients(section.get("allowed_clients", None), binds, path_of, where,
                               in_file)
    return Security(service, KeyPair(public, secret), server_keys, allowed, source)


def _server_keys(value: Any, entries: list, path_of, where, in_file: str
                 ) -> dict[tuple[str, str], bytes]:
    given = {} if value is None else value
    if not isinstance(given, Mapping):
        raise ConfigError(f"security.server_keys{in_file}: expected an object "
                          "{connection or state name: key file}")
    connecting: dict[tuple[str, str], None] = {}
    for entry in entries:
        if not entry.binds:
            connecting[(entry.section, entry.name)] = None
    names = {name for _, name in connecting} | {f"{s}.{n}" for s, n in connecting}
    keys: dict[str, bytes] = {}
    for name, path in given.items():
        if name not in names:
            raise ConfigError(f"security.server_keys.{name}{in_file}: this service connects "
                              f"no connection or state of that name (it connects: "
                              f"{', '.join(sorted(n for _, n in connecting)) or 'nothing'})")
        keys[name] = read_key_file(path_of(path, f"security.server_keys.{name}"),
                                   where=where(f"server_keys.{name}"))[0]
    resolved: dict[tuple[str, str], bytes] = {}
    for section, name in connecting:
        key = keys.get(f"{section}.{name}", keys.get(name))
        if key is None:
            kind = "connection" if section == "connections" else "state"
            raise ConfigError(f"security.server_keys.{name}{in_file}: missing: {kind} "
                              f"{name!r} connects, so it needs the public key file of the "
                              "service it connects to")
        resolved[(section, name)] = key
    return resolved


def _allowed_clients(value: Any, binds: bool, path_of, where, in_file: str
                     ) -> frozenset[bytes] | None:
    if value is None:
        if binds:
            raise ConfigError(f"security.allowed_clients{in_file}: missing: this service "
                              "binds sockets; list the public key files of the clients "
                              "allowed to reach them ([] refuses everyone)")
        return None
    if not isinstance(value, list):
        raise ConfigError(f"security.allowed_clients{in_file}: expected a list of key "
                          f"files or folders, got {type(value).__name__}")
    allowed: set[bytes] = set()
    for index, item in enumerate(value):
        label = f"allowed_clients[{index}]"
        path = path_of(item, f"security.{label}")
        files = sorted(path.glob("*.key")) if path.is_dir() else [path]
        for file in files:
            allowed.add(read_key_file(file, where=where(label))[0])
    return frozenset(allowed)
