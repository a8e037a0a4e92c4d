"""Reading the files a service is started with — config, addresses, key files, traces —
with bounds, so a wrong or hostile path gives one clear error instead of a hang or a
MemoryError.

- Only regular files: a FIFO would block the start for ever, `/dev/zero` would fill memory,
  a folder is a mistake. The check is made on the open descriptor (opened non-blocking, so
  a FIFO cannot block the open itself), not on a path that could change in between.
- At most `max_bytes` are read (`MAX_CONFIG_BYTES` for JSON files and key files).
- A NUL byte in a path, a path that is not text, too long a name: the same kind of error.
- JSON nested deeper than Python's parser can follow (RecursionError) is invalid JSON.
"""

from __future__ import annotations

import json
import os
import stat

from ..errors import ConfigError

__all__ = ["MAX_CONFIG_BYTES", "read_bounded", "read_json"]

MAX_CONFIG_BYTES = 16 * 1024 * 1024
"""The largest config, addresses or key file read (16 MiB; real ones are a few KB)."""


def read_bounded(path: str | os.PathLike, what: str, *, max_bytes: int = MAX_CONFIG_BYTES,
                 error: type[Exception] = ConfigError) -> bytes:
    """The bytes of a regular file of at most `max_bytes`; else `error` naming `what`."""
    name = _printable(path)
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise error(f"{what} {name}: not found") from None
    except (OSError, ValueError, TypeError) as exc:  # ValueError: an embedded NUL byte
        raise error(f"{what} {name}: cannot open: {_reason(exc)}") from None
    try:
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode):
            kind = "a folder" if stat.S_ISDIR(status.st_mode) else "not a regular file"
            raise error(f"{what} {name}: {kind} (expected a file)")
        if status.st_size > max_bytes:
            raise error(f"{what} {name}: {status.st_size} bytes, more than the "
                        f"{max_bytes} allowed")
        os.set_blocking(descriptor, True)
        with os.fdopen(descriptor, "rb", closefd=False) as handle:
            data = handle.read(max_bytes + 1)  # the file may have grown since fstat
    except OSError as exc:
        raise error(f"{what} {name}: cannot read: {_reason(exc)}") from None
    finally:
        os.close(descriptor)
    if len(data) > max_bytes:
        raise error(f"{what} {name}: more than the {max_bytes} bytes allowed")
    return data


def read_json(path: str | os.PathLike, what: str, *,
              max_bytes: int = MAX_CONFIG_BYTES) -> object:
    """The JSON value in a bounded file; ConfigError naming `what` and the file."""
    data = read_bounded(path, what, max_bytes=max_bytes)
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{what} {_printable(path)}: not UTF-8 text ({exc.reason} at "
                          f"byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{what} {_printable(path)}: invalid JSON: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{what} {_printable(path)}: invalid JSON: nested too deeply") \
            from None


def _printable(path: str | os.PathLike) -> str:
    """A path as it can be shown on one line (control characters escaped, cut at 200)."""
    try:
        text = os.fsdecode(path)
    except (TypeError, ValueError):
        return repr(path)[:200]
    shown = text.encode("unicode_escape").decode("ascii")
    return shown if len(shown) <= 200 else shown[:197] + "..."


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
