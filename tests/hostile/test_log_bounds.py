"""Logs cannot be flooded or forged by a peer (issue 11, item 8).

The CLI runs a service whose log (console) goes to a file; raw peers send it hostile
requests and publications. Every line is a record of ours or a traceback line (`  | `),
none longer than 1 KB, none forged, and 100k bad messages write under 1 MB.
"""

from __future__ import annotations

import logging
import re

import zmq
from helpers import EXAMPLES, endpoint, free_port, wait_until

from hostile.attack import Dealer, Target, echo_replyer
from service_framework.logs import RateLimit, SafeFormatter, one_line
from service_framework.wire.envelope import encode_request

RECORD = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) \[")


def check_lines(log: str) -> list[str]:
    """The log's records (their levels); fails on a line that is too long or not ours."""
    levels = []
    for line in log.splitlines():
        assert len(line.encode()) < 1024, f"a line of {len(line.encode())} bytes"
        if line.startswith("  | "):
            continue
        match = RECORD.match(line)
        assert match, f"not a record of ours: {line[:200]!r}"
        levels.append(match.group(1))
    return levels


def test_an_8_mb_unknown_key_writes_short_lines_and_is_answered(tmp_path):
    target, port = echo_replyer(tmp_path)
    client = Dealer(port)
    try:
        client.socket.send(encode_request("w", {"text": "x", "k" * 8_000_000: 1}, "big",
                                          max_bytes=1 << 30))
        assert client.socket.poll(10_000)
        assert client.echo("after")["text"] == "after"
    finally:
        client.close()
        target.stop()
    check_lines(target.log())
    assert "unknown key" in target.log()


def test_a_workflow_id_cannot_forge_a_record(tmp_path):
    target, port = echo_replyer(tmp_path)
    client = Dealer(port)
    forged = "x\n2026-12-05 01:00:00,000 CRITICAL [svc -] service_framework: forged\r\x1b[2K"
    try:
        client.socket.send(encode_request(forged, {"nope": 1}, "r1", max_bytes=1 << 20))
        assert client.socket.poll(10_000)
        assert client.echo("after")["text"] == "after"
    finally:
        client.close()
        target.stop()
    levels = check_lines(target.log())
    assert "CRITICAL" not in levels and "\\n2026-12-05 01:00:00,000 CRITICAL" in target.log()


def test_100k_bad_requests_write_under_1_mb(tmp_path):
    target, port = echo_replyer(tmp_path)
    client = Dealer(port, SNDHWM=0, RCVHWM=0)
    try:
        for _ in range(100):
            for _ in range(1_000):
                client.socket.send(b"\xc1")  # never msgpack: an error reply and a warning
            for _ in range(1_000):
                assert client.socket.poll(10_000), "an error reply is missing"
                client.socket.recv_multipart()
        assert client.echo("after")["text"] == "after"
    finally:
        client.close()
        target.stop()
    size = target.log_path.stat().st_size
    assert size < 1_000_000, f"{size} bytes of log"
    check_lines(target.log())
    assert "similar message(s) suppressed" in target.log() or target.log().count("bad") <= 20


def test_100k_bad_publications_write_under_1_mb(tmp_path):
    port = free_port()
    publisher = zmq.Context.instance().socket(zmq.XPUB)
    publisher.linger = 0
    publisher.setsockopt(zmq.SNDHWM, 0)
    publisher.bind(f"tcp://{endpoint(port)}")
    target = Target(tmp_path, EXAMPLES / "pubsub" / "subscriber.py",
                    {"connections": {"in": {"ticks": {"subscriber": endpoint(port)}}}})
    try:
        assert publisher.poll(15_000), "no subscription"
        topic = publisher.recv()[1:]
        for _ in range(100_000):
            publisher.send_multipart([topic, b"\xc1"])
        wait_until(lambda: target.log().count("dropped") >= 1, timeout=15,
                   message="the subscriber's warnings")
    finally:
        assert target.stop() == 0
        publisher.close()
    size = target.log_path.stat().st_size
    assert size < 1_000_000, f"{size} bytes of log"
    check_lines(target.log())


# -- the parts, on their own ------------------------------------------------------------------
def test_one_line_escapes_control_characters_and_cuts():
    assert one_line("a\nb\r\x1b[31m\x00\u2028") == "a\\nb\\r\\x1b[31m\\x00\\u2028"
    assert one_line("x" * 50, limit=10) == "x" * 10 + "… (40 more characters cut)"


def test_the_rate_limit_lets_a_burst_through_per_call_site_then_counts():
    now = [0.0]
    limit = RateLimit(burst=3, window_s=10, clock=lambda: now[0])

    def record(line: int, level: int = logging.WARNING) -> logging.LogRecord:
        return logging.LogRecord("service_framework", level, "svc.py", line, "bad %s",
                                 ("x",), None)

    assert [limit.filter(record(1)) for _ in range(5)] == [True, True, True, False, False]
    assert limit.filter(record(2))  # another call site
    assert limit.filter(record(1, logging.INFO))  # below WARNING: never limited
    now[0] = 10.0
    passed = record(1)
    assert limit.filter(passed) and "[2 similar message(s) suppressed]" in passed.msg


def test_the_formatter_keeps_a_traceback_off_the_record_column():
    formatter = SafeFormatter("%(levelname)s %(message)s")
    try:
        raise ValueError("peer\nCRITICAL forged")
    except ValueError:
        import sys
        record = logging.LogRecord("n", logging.ERROR, "p", 1, "failed", None, sys.exc_info())
    lines = formatter.format(record).splitlines()
    assert lines[0] == "ERROR failed" and all(line.startswith("  | ") for line in lines[1:])
