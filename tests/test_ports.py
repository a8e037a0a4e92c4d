"""Free test ports stay out of the kernel's ephemeral range, where an outgoing connection
could take one between the probe and the service's bind (CI saw "address already in use")."""

import socket

from service_framework_testing import ports
from service_framework_testing.ports import free_port


def test_a_free_port_is_never_one_the_kernel_hands_to_outgoing_connections():
    low, high = ports._ephemeral_range()
    handed = [free_port() for _ in range(200)]
    assert all(not low <= port <= high for port in handed)
    assert len(set(handed)) == len(handed)  # one process never gets a port twice in a row


def test_a_port_someone_listens_on_is_skipped():
    upcoming = free_port() + 1
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", upcoming))
        taken.listen()
        assert free_port() != upcoming


def test_the_ephemeral_range_is_read_from_the_kernel(tmp_path, monkeypatch):
    setting = tmp_path / "ip_local_port_range"
    setting.write_text("20000\t40000\n")
    monkeypatch.setattr(ports, "EPHEMERAL_RANGE_FILE", setting)
    assert ports._ephemeral_range() == (20000, 40000)
    assert ports._pool() == range(10000, 20000)
    setting.write_text("1024\t60000\n")  # no room below: the ports above it
    assert ports._pool() == range(60001, 65536)
    setting.unlink()
    assert ports._pool() == range(10000, 32768)
