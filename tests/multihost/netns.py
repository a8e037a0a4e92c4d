"""Three hosts on one machine: network namespaces joined by a bridge in a fourth (the
switch), so no traffic ever touches the machine's own network. Needs root and `ip`.

    hosts = Hosts.create()        # a, b, c at 10.231.0.1-3/24
    hosts.run("a", [...])         # a process on host a
    hosts.cut("b") / hosts.mend("b")   # b's cable out, and back in
    hosts.destroy()

The namespaces are named after the creating process (`sf<pid in hex><host>`), and its
processes die with it (PR_SET_PDEATHSIG): namespaces a killed run left behind are swept by
the next run (`sweep_stale`).
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import signal
import subprocess
import uuid
from typing import Sequence

SUBNET = "10.231.0"
HOSTS = ("a", "b", "c")


def unavailable() -> str | None:
    """Why namespaces cannot be made here, or None when they can."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is not installed"
    probe = f"sfprobe{uuid.uuid4().hex[:6]}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"`ip netns add` failed: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def _ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {result.stderr.strip()}")


_OURS = re.compile(r"sf([0-9a-f]{7})(?:a|b|c|sw)")
_PR_SET_PDEATHSIG = 1


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale() -> list[str]:
    """Deletes the namespaces of runs whose process is gone (killed before it could clean
    up), killing what still runs in them; returns their names."""
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    swept = []
    for line in listed.splitlines():
        name = line.split(" ", 1)[0]
        match = _OURS.fullmatch(name)
        if match is None or _alive(int(match.group(1), 16)):
            continue
        pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True)
        for pid in pids.stdout.split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
        swept.append(name)
    return swept


# Looked up here, not in the child: between fork and exec only this call runs (no dlopen,
# whose lock another thread of the parent might have held at the fork).
# (None where there is no prctl: namespaces are Linux's, and the run is skipped elsewhere.)
try:
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):
    _prctl = None


def _die_with_parent() -> None:  # in the child, before exec: `ip netns exec` execs in turn
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class Hosts:
    def __init__(self, tag: str) -> None:
        self.tag = tag  # short: interface names have at most 15 characters
        self.namespaces = {host: f"sf{tag}{host}" for host in (*HOSTS, "sw")}
        self.processes: list[subprocess.Popen] = []

    @classmethod
    def create(cls) -> "Hosts":
        sweep_stale()
        hosts = cls(f"{os.getpid():07x}")
        try:
            hosts._build()
        except BaseException:
            hosts.destroy()
            raise
        return hosts

    def address(self, host: str) -> str:
        return f"{SUBNET}.{HOSTS.index(host) + 1}"

    def _port(self, host: str) -> str:
        return f"sf{self.tag}{host}1"  # the switch's side of host's cable

    def _build(self) -> None:
        for namespace in self.namespaces.values():
            _ip("netns", "add", namespace)
        switch = self.namespaces["sw"]
        _ip("-n", switch, "link", "add", "br0", "type", "bridge")
        _ip("-n", switch, "link", "set", "br0", "up")
        for host in HOSTS:
            namespace = self.namespaces[host]
            _ip("link", "add", "name", f"sf{self.tag}{host}0", "netns", namespace, "type",
                "veth", "peer", "name", self._port(host), "netns", switch)
            _ip("-n", namespace, "link", "set", f"sf{self.tag}{host}0", "name", "eth0")
            _ip("-n", namespace, "addr", "add", f"{self.address(host)}/24", "dev", "eth0")
            _ip("-n", namespace, "link", "set", "eth0", "up")
            _ip("-n", namespace, "link", "set", "lo", "up")
            _ip("-n", switch, "link", "set", self._port(host), "master", "br0")
            _ip("-n", switch, "link", "set", self._port(host), "up")

    def run(self, host: str, args: Sequence[str], **popen) -> subprocess.Popen:
        process = subprocess.Popen(["ip", "netns", "exec", self.namespaces[host], *args],
                                   preexec_fn=_die_with_parent, **popen)
        self.processes.append(process)
        return process

    def cut(self, host: str) -> None:
        """Pulls `host`'s cable: its link is down, nothing gets in or out, nobody is told."""
        _ip("-n", self.namespaces["sw"], "link", "set", self._port(host), "down")

    def mend(self, host: str) -> None:
        _ip("-n", self.namespaces["sw"], "link", "set", self._port(host), "up")

    def destroy(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
            process.wait()
        for namespace in self.namespaces.values():
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True)
