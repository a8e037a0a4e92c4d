"""What the benchmark processes share: the payload, the service modules, a raw msgpack codec.

The payload is small and typical of a trading service: an int, a short string, a Decimal
and an aware datetime. The framework sends it through its codec (ext types) and validates
it on every hop; the raw pyzmq baselines send the same dict with msgpack and the smallest
possible ext hooks for Decimal and datetime, and validate nothing.
"""

from __future__ import annotations

import os
import time
import types
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable

import msgpack

from service_framework_testing.ports import free_port  # noqa: F401 - shared by the benchmarks

PAYLOAD: dict[str, Any] = {"id": 7, "side": "buy", "price": Decimal("101.25"),
                           "at": datetime(2030, 1, 1, 12, 0, tzinfo=timezone.utc)}
PAYLOAD_MODEL = {"id": int, "side": str, "price": Decimal, "at": datetime}
BOOK_MODEL = {"asks": {Decimal: Decimal}, "bids": {Decimal: Decimal}}


def module(name: str, **attributes: Any) -> types.ModuleType:
    built = types.ModuleType(name)
    built.__dict__.update(attributes)
    return built


# -- service modules ---------------------------------------------------------------------------
def echo_replyer() -> types.ModuleType:
    def on_new_request(args, to_send, states, config):
        return args

    return module("bench_echo", connection_models={"in": {"echo": {
        "connection_type": "replyer",
        "required_creation_arguments": {"on_new_request": on_new_request},
        "required_arguments": PAYLOAD_MODEL,
        "required_return_arguments": PAYLOAD_MODEL,
    }}})


def echo_requester(timeout_s: float = 5.0) -> types.ModuleType:
    return module("bench_requester", connection_models={"out": {"echo": {
        "connection_type": "requester",
        "required_arguments": PAYLOAD_MODEL,
        "required_return_arguments": PAYLOAD_MODEL,
        "optional_creation_arguments": {"timeout_s": timeout_s},
    }}})


def ticks_publisher(**creation: Any) -> types.ModuleType:
    return module("bench_publisher", connection_models={"out": {"ticks": {
        "connection_type": "publisher",
        "required_arguments": PAYLOAD_MODEL,
        "optional_creation_arguments": creation,
    }}})


def ticks_subscriber(on_message: Callable, names: tuple[str, ...] = ("ticks",)
                     ) -> types.ModuleType:
    """A service with one subscriber connection per name, all calling `on_message`."""
    return module("bench_subscriber", connection_models={"in": {name: {
        "connection_type": "subscriber",
        "required_creation_arguments": {"on_new_message": on_message},
        "required_arguments": PAYLOAD_MODEL,
    } for name in names}})


def book_producer() -> types.ModuleType:
    return module("bench_book_out", state_models={"out": {"book": {
        "state_type": "delta_update_out", "optional_arguments": BOOK_MODEL}}})


def book_consumer() -> types.ModuleType:
    return module("bench_book_in", state_models={"in": {"book": {
        "state_type": "delta_update_in", "optional_arguments": BOOK_MODEL}}})


def book_deltas(count: int) -> list[dict]:
    """Order-book-like deltas: a level changes size, appears, or goes (None)."""
    deltas = []
    for n in range(count):
        side = "asks" if n % 2 else "bids"
        price = Decimal(10000 + (n * 7919) % 200) / 100
        size = None if n % 5 == 0 else Decimal(1 + n % 97) / 10
        deltas.append({side: {price: size}})
    return deltas


# -- raw msgpack with minimal ext types (the baseline) ----------------------------------------
def _raw_default(value: Any) -> Any:
    if type(value) is Decimal:
        return msgpack.ExtType(1, str(value).encode())
    if type(value) is datetime:
        return msgpack.ExtType(2, value.isoformat().encode())
    raise TypeError(f"cannot encode {type(value).__name__}")


def _raw_ext_hook(code: int, data: bytes) -> Any:
    if code == 1:
        return Decimal(data.decode())
    if code == 2:
        return datetime.fromisoformat(data.decode())
    return msgpack.ExtType(code, data)


def raw_pack(value: Any) -> bytes:
    return msgpack.packb(value, default=_raw_default, use_bin_type=True)


def raw_unpack(data: bytes) -> Any:
    return msgpack.unpackb(data, ext_hook=_raw_ext_hook, raw=False)


# -- /proc ---------------------------------------------------------------------------------------
def cpu_seconds(pid: int | str = "self") -> float:
    """utime + stime of a process (all its threads), from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def status_kib(key: str, pid: int | str = "self") -> int:
    """A `kB` line of /proc/<pid>/status, e.g. VmHWM (peak RSS) or VmRSS (pid "meminfo":
    of /proc/meminfo)."""
    path = Path("/proc/meminfo") if pid == "meminfo" else Path(f"/proc/{pid}/status")
    for line in path.read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def machine() -> str:
    """The host a table was measured on: CPU model, cores, memory, kernel."""
    import platform

    cpuinfo = Path("/proc/cpuinfo")
    model = next((line.split(":", 1)[1].strip() for line in
                  (cpuinfo.read_text().splitlines() if cpuinfo.exists() else [])
                  if line.startswith("model name")), platform.processor() or "unknown CPU")
    try:
        memory = f", {status_kib('MemTotal', 'meminfo') / 1024 ** 2:.0f} GiB"
    except (OSError, KeyError):
        memory = ""
    return (f"{model}, {os.cpu_count()} CPU(s){memory}, {platform.system()} "
            f"{platform.release()} {platform.machine()}")


# -- measuring ----------------------------------------------------------------------------------
def rate(operation: Callable[[], Any], window_s: float, batch: int = 50) -> float:
    """Calls per second of `operation` over about `window_s` seconds."""
    count = 0
    started = time.perf_counter()
    deadline = started + window_s
    while True:
        for _ in range(batch):
            operation()
        count += batch
        now = time.perf_counter()
        if now >= deadline:
            return count / (now - started)
