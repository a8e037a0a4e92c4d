"""Shared helpers of the real-ZeroMQ tests: free ports, waiting on conditions, the CLI.

Nothing here sleeps and hopes: `wait_until` polls a condition until a deadline and fails
with a message when the deadline passes.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Any, Callable

from service_framework_testing.ports import free_port

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
TEST_SERVICES = Path(__file__).resolve().parent / "services"
CONSOLE_SCRIPT = Path(sys.executable).parent / "service_framework"
_module_ids = itertools.count()


def endpoint(port: int) -> str:
    return f"127.0.0.1:{port}"


def wait_until(condition: Callable[[], Any], timeout: float = 5.0, *,
               interval: float = 0.005, message: str = "condition") -> Any:
    """Polls `condition` until it returns something truthy (returned) or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {message}")
        time.sleep(interval)


def port_is_listening(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.2)
        return probe.connect_ex((host, port)) == 0


def rewrite_addresses(source: Path, directory: Path, name: str = "addresses.json") -> Path:
    """Copies an addresses file into `directory`, every distinct port replaced by a free one.

    The same port in two places (a replyer and the requester that talks to it) gets the
    same new port, so the topology is kept.
    """
    data = json.loads(Path(source).read_text())
    ports: dict[str, int] = {}

    def remap(value: Any) -> Any:
        if isinstance(value, list):
            return [remap(item) for item in value]
        if isinstance(value, dict):
            return {key: remap(item) for key, item in value.items()}
        host, _, port = value.rpartition(":")
        if port not in ports:
            ports[port] = free_port()
        return f"{host}:{ports[port]}"

    rewritten = {section: remap(value) if section != "security" else value
                 for section, value in data.items()}
    target = Path(directory) / name
    target.write_text(json.dumps(rewritten, indent=2))
    return target


def addresses_ports(path: Path) -> list[int]:
    """Every port written in an addresses file, in order of appearance, without repeats."""
    found: list[int] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, str) and (port := int(value.rpartition(":")[2])) not in found:
            found.append(port)

    walk(json.loads(Path(path).read_text()))
    return found


# -- the command line ------------------------------------------------------------------------
def cli_command(*args: str, console_script: bool = False) -> list[str]:
    base = [str(CONSOLE_SCRIPT)] if console_script else [sys.executable, "-m",
                                                          "service_framework"]
    return [*base, *map(str, args)]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("PYTHONPATH", None)
    return env


def run_cli(*args: str, cwd: Path | str | None = None, timeout: float = 20.0,
            console_script: bool = False) -> subprocess.CompletedProcess:
    """Runs `service_framework ARGS` to completion; stdout and stderr captured as text."""
    return subprocess.run(cli_command(*args, console_script=console_script),
                          cwd=cwd or REPO, env=_env(), capture_output=True, text=True,
                          timeout=timeout)


def start_cli(*args: str, cwd: Path | str | None = None,
              console_script: bool = False) -> subprocess.Popen:
    """Starts `service_framework ARGS` in the background (stop it with `finish`)."""
    return subprocess.Popen(cli_command(*args, console_script=console_script),
                            cwd=cwd or REPO, env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen, timeout: float = 10.0, *,
           send: signal.Signals | None = None) -> tuple[int, str, str]:
    """Optionally signals a process, waits for it (killed past `timeout`), returns its output."""
    if send is not None and process.poll() is None:
        process.send_signal(send)
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        raise AssertionError(f"process did not exit within {timeout:g}s\n"
                             f"stdout:\n{out}\nstderr:\n{err}") from None
    return process.returncode, out, err


def catches_signal(pid: int, signum: int) -> bool:
    """Whether process `pid` has a handler installed for `signum` (/proc/<pid>/status SigCgt).

    Python catches SIGTERM only once a handler is installed, so this tells exactly when a
    CLI-run service routes signals to its handlers.
    """
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    for line in status.splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (signum - 1) & 1)
    return False


def cpu_seconds(pid: int | str = "self") -> float:
    """utime + stime of a process in seconds, from /proc/<pid>/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rpartition(")")[2].split()  # after the command name, which may hold spaces
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int | str = "self", *, peak: bool = False) -> float:
    """Resident memory of a process in MiB (VmRSS), or its high-water mark (VmHWM).

    The hostile-peer tests assert their bounds with it: growth is `rss_mib(pid)` after the
    attack minus before, peak growth uses `peak=True`.
    """
    field = "VmHWM:" if peak else "VmRSS:"
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1]) / 1024  # reported in kB
    raise AssertionError(f"/proc/{pid}/status has no {field}")


# -- services in this process ----------------------------------------------------------------
def make_module(name: str, **attributes: Any) -> types.ModuleType:
    """A service module built in the test (a unique module name per call)."""
    module = types.ModuleType(f"{name}")
    module.__dict__.update(attributes)
    return module


def load_module(path: Path) -> types.ModuleType:
    """Imports a service file under a unique module name."""
    name = f"_test_service_{Path(path).stem}_{next(_module_ids)}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def replyer_addresses(name: str, port: int) -> dict:
    return {"connections": {"in": {name: {"replyer": endpoint(port)}}}}


def requester_addresses(name: str, port: int) -> dict:
    return {"connections": {"out": {name: {"requester": endpoint(port)}}}}


class ServicePool:
    """Starts `Service` objects on real ZeroMQ and stops every one of them at the end."""

    def __init__(self) -> None:
        self.services: list = []

    def start(self, module: types.ModuleType, addresses: dict | None = None,
              config: dict | None = None) -> Any:
        from service_framework import Service

        service = Service(service_module=module, config=config, addresses=addresses,
                          console_loglevel="WARNING")
        self.services.append(service)
        return service.run_service()

    def stop_all(self) -> None:
        for service in reversed(self.services):
            service.stop_service()
        self.services.clear()

    def __enter__(self) -> "ServicePool":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop_all()


def ask(service: Any, connection: str, args: dict) -> dict:
    """`to_send('connection', connection, args)` of a running service, from the test."""
    return service.runtime.to_send("connection", connection, args)
