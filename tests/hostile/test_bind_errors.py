"""Bind and connect errors end the CLI with exit 2 and one line naming the connection, the
endpoint and the true reason (issue 11, item 9); an endpoint of any length is cut in it.
(A port in use, an unresolvable host, an address not on this machine and an ipc path too
long are in `test_files_and_traces.py`.) An IPv6 address, which the addresses file may
give in brackets, binds: libzmq takes it only when asked (ZMQ_IPV6)."""

from __future__ import annotations

import json
import socket
import subprocess

import pytest
import zmq
from helpers import EXAMPLES, run_cli

from hostile.test_files_and_traces import one_error_line
from service_framework.transport.base import SocketKind
from service_framework.transport.zmq import ZmqTransport

ECHO = EXAMPLES / "echo"


def replyer_at(tmp_path, endpoint: str) -> subprocess.CompletedProcess:
    path = tmp_path / "addresses.json"
    path.write_text(json.dumps({"connections": {"in": {"echo": {"replyer": endpoint}}}}))
    return run_cli("-s", ECHO / "replyer.py", "-a", path)


def test_a_missing_ipc_folder_is_named_as_such(tmp_path):
    # pyzmq's text for ENOENT mentions "ipc path": it was reported as a path too long
    one_error_line(replyer_at(tmp_path, "ipc:///no/such/folder/sock"),
                   "replyer.echo: cannot bind", "the ipc path's folder does not exist")


def test_an_endpoint_of_300k_characters_is_cut_in_its_error(tmp_path):
    line = one_error_line(replyer_at(tmp_path, "ipc:///tmp/" + "y" * 300_000),
                          "more characters cut", "ipc path too long (300005 bytes; at most 107)")
    assert len(line) < 1000


def test_a_connect_error_is_one_line(tmp_path):
    path = tmp_path / "addresses.json"
    path.write_text(json.dumps({"connections": {"out": {"echo": {
        "requester": "ipc:///tmp/" + "x" * 200}}}}))
    one_error_line(run_cli("-s", ECHO / "requester.py", "-a", path,
                           "-c", ECHO / "requester_config.json", "-m"),
                   "requester.echo: cannot connect to", "ipc path too long")


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback on this machine")
def test_an_ipv6_endpoint_binds_and_connects():
    # It was "cannot resolve the host or interface": ZMQ_IPV6 was never set.
    transport = ZmqTransport()
    server = transport.socket(SocketKind.ROUTER, owner="v6.server")
    client = transport.socket(SocketKind.DEALER, owner="v6.client")
    try:
        bound = server.bind("tcp://[::1]:0")
        assert bound.startswith("tcp://[::1]:")
        client.connect(bound)
        assert client.send([b"hello"])
        assert server.raw.poll(5000, zmq.POLLIN)
        assert server.recv()[-1] == b"hello"
    finally:
        client.close()
        server.close()
