"""Files and traces cannot hang, exhaust or command a service (issue 11, items 9-11).

Every load, bind, config, address or trace error ends the CLI with exit 2 and one line
(never a traceback); only regular files are read, each read is capped; a replay streams
its trace; a trace's header is data: the service's own config is used unless
`--config-from-trace` says otherwise, and secrets are never written into it.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
from helpers import EXAMPLES, TEST_SERVICES, cli_command, endpoint, free_port, rss_mib, run_cli

from service_framework import Service

ECHO = EXAMPLES / "echo" / "replyer.py"
HEADER = {"trace": 1, "service": "replyer", "started": "2030-01-01T00:00:00+00:00", "seed": 0}


def one_error_line(result: subprocess.CompletedProcess, *needles: str) -> str:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def addresses(tmp_path, endpoint_text: str) -> str:
    path = tmp_path / "addresses.json"
    path.write_text(json.dumps({"connections": {"in": {"echo": {"replyer": endpoint_text}}}}))
    return str(path)


# -- item 9: load, bind, config, address and trace errors --------------------------------------
def test_a_port_in_use_is_one_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("-s", ECHO, "-a", addresses(tmp_path, endpoint(port)))
    one_error_line(result, f"127.0.0.1:{port}", "address already in use")


@pytest.mark.parametrize("where, needle", [
    ("no-such-host.invalid:5000", "cannot resolve"),
    ("10.254.254.254:5000", "not on this machine"),
    ("ipc:///tmp/" + "x" * 200, "ipc path too long"),
])
def test_bad_endpoints_are_one_line(tmp_path, where, needle):
    one_error_line(run_cli("-s", ECHO, "-a", addresses(tmp_path, where)), needle)


def deep_json(tmp_path, name: str) -> str:
    path = tmp_path / name
    path.write_text("[" * 100_000 + "]" * 100_000)
    return str(path)


def test_json_nested_100k_deep_is_one_line(tmp_path):
    one_error_line(run_cli("-s", ECHO, "-a", deep_json(tmp_path, "a.json")),
                   "addresses file", "nested too deeply")
    one_error_line(run_cli("-s", ECHO, "-c", deep_json(tmp_path, "c.json"), "--check"),
                   "config file", "nested too deeply")
    trace = tmp_path / "t.jsonl"
    trace.write_text(json.dumps(HEADER) + "\n" + "[" * 100_000 + "]" * 100_000 + "\n")
    one_error_line(run_cli("--replay", trace, "-s", ECHO), "t.jsonl:2", "nested too deeply")


def test_devices_fifos_and_folders_are_refused_without_reading_them(tmp_path):
    fifo = tmp_path / "config.fifo"
    os.mkfifo(fifo)
    one_error_line(run_cli("-s", ECHO, "-c", fifo, "--check", timeout=10),
                   "not a regular file")
    one_error_line(run_cli("-s", ECHO, "-c", "/dev/zero", "--check", timeout=10),
                   "/dev/zero", "not a regular file")
    one_error_line(run_cli("-s", ECHO, "-a", tmp_path, "--check", timeout=10), "a folder")
    one_error_line(run_cli("--replay", "/dev/zero", "-s", ECHO, timeout=10),
                   "not a regular file")


def secured_addresses(tmp_path, key_path: str) -> str:
    path = tmp_path / "secure.json"
    path.write_text(json.dumps({
        "connections": {"in": {"echo": {"replyer": endpoint(free_port())}}},
        "security": {"public_key": key_path, "secret_key": key_path}}))
    return str(path)


@pytest.mark.parametrize("key_path", ["/dev/zero", "keys\u0000/server.key"])
def test_a_key_path_that_is_a_device_or_holds_a_nul_is_one_line(tmp_path, key_path):
    one_error_line(run_cli("-s", ECHO, "-a", secured_addresses(tmp_path, key_path), "--check",
                           timeout=10), "security.public_key")


def test_an_oversized_config_file_is_refused_by_its_size(tmp_path):
    big = tmp_path / "big.json"
    with open(big, "wb") as handle:
        handle.truncate(17 * 1024 * 1024)  # sparse: 17 MiB of NULs cost no disk
    one_error_line(run_cli("-s", ECHO, "-c", big, "--check"), "more than the")


# -- item 10: replay streams; one line is capped ----------------------------------------------
def write_echo_trace(path, requests: int, text_bytes: int) -> None:
    """A valid trace of the echo replyer: `requests` requests and their replies."""
    with open(path, "w") as out:
        out.write(json.dumps(HEADER) + "\n")
        for n in range(1, requests + 1):
            text = f"{n:08d}" + "x" * text_bytes
            base = {"t": n / 1000, "name": "echo", "workflow_id": f"wf{n}"}
            out.write(json.dumps({**base, "dir": "in", "kind": "request",
                                  "args": {"text": text}}) + "\n")
            out.write(json.dumps({**base, "dir": "out", "kind": "reply",
                                  "return_args": {"text": text, "count": n}}) + "\n")


def test_a_replay_streams_its_trace(tmp_path):
    trace = tmp_path / "big.jsonl"
    write_echo_trace(trace, requests=1_200, text_bytes=200_000)  # about 480 MB
    assert os.path.getsize(trace) > 450e6
    process = subprocess.Popen(cli_command("--replay", trace, "-s", ECHO, "-cl", "WARNING"),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0.0
    while process.poll() is None:
        try:
            peak = max(peak, rss_mib(process.pid, peak=True))
        except (FileNotFoundError, AssertionError):
            break
        try:
            process.wait(timeout=0.2)
        except subprocess.TimeoutExpired:
            pass
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, out + err
    assert "replay OK" in out and "2400 events" in out
    assert peak < 200, f"peak {peak:.0f} MiB for a {os.path.getsize(trace) / 1e6:.0f} MB trace"


def test_one_line_past_the_cap_is_an_error_not_an_allocation(tmp_path):
    trace = tmp_path / "long.jsonl"
    with open(trace, "w") as out:
        out.write(json.dumps(HEADER) + "\n")
        out.write('{"t": 0, "note": "' + "x" * (70 * 1024 * 1024) + '"}\n')
    show = subprocess.run([sys.executable, "-m", "service_framework.trace.cli", "show", trace],
                          capture_output=True, text=True, timeout=60)
    one_error_line(show, "long.jsonl:2", "line longer than")
    one_error_line(run_cli("--replay", trace, "-s", ECHO, timeout=60), "line longer than")


# -- item 11: a trace is data; secrets are not recorded -----------------------------------------
def record_plugin_trace(tmp_path, plugin: str) -> str:
    """A trace of plugin_replyer whose header claims `plugin` as its config."""
    trace = tmp_path / "plugin.jsonl"
    header = {**HEADER, "service": "plugin_replyer", "config": {"plugin": plugin}}
    trace.write_text(json.dumps(header) + "\n" + json.dumps(
        {"t": 0.001, "dir": "in", "kind": "request", "name": "ask", "workflow_id": "w1",
         "args": {"q": "hi"}}) + "\n")
    return str(trace)


def test_a_replay_does_not_take_its_config_from_the_trace(tmp_path):
    marker = tmp_path / "pwned"
    (tmp_path / "evil_plugin.py").write_text(
        f"open({str(marker)!r}, 'w').write('imported')\n")
    trace = record_plugin_trace(tmp_path, "evil_plugin")
    env_path = {"PYTHONPATH": str(tmp_path)}
    result = subprocess.run(cli_command("--replay", trace, "-s", TEST_SERVICES /
                                        "plugin_replyer.py", "-cl", "WARNING"),
                            capture_output=True, text=True, timeout=30, cwd=tmp_path,
                            env={**os.environ, **env_path})
    assert not marker.exists(), "the trace's header made the replay import a module"
    assert "string:hi" in result.stdout + result.stderr  # the service's own config
    # Asked for explicitly, the header's config is still checked by config_model.
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({**HEADER, "service": "plugin_replyer",
                               "config": {"limit": "lots"}}) + "\n")
    one_error_line(subprocess.run(cli_command(
        "--replay", bad, "--config-from-trace", "-s", TEST_SERVICES / "plugin_replyer.py"),
        capture_output=True, text=True, timeout=30), "limit")


def test_secrets_are_redacted_in_headers_and_errors(tmp_path):
    trace = tmp_path / "rec.jsonl"
    port = free_port()
    addresses_path = tmp_path / "a.json"
    addresses_path.write_text(json.dumps({"connections": {"in": {"ask": {
        "replyer": endpoint(port)}}}}))
    service = Service(service_path=TEST_SERVICES / "plugin_replyer.py", addresses=addresses_path,
                      config={"db_password": "hunter2", "api": "tok-123", "limit": 3},
                      console_loglevel="CRITICAL", record_path=trace)
    service.run_service()
    service.stop_service()
    header = json.loads(trace.read_text().splitlines()[0])
    assert header["config"] == {"db_password": "***", "api": "***", "limit": 3}
    assert "hunter2" not in trace.read_text() and "tok-123" not in trace.read_text()
    result = run_cli("-s", TEST_SERVICES / "plugin_replyer.py", "-a", addresses_path,
                     "--check", "--api=1", "--db_password=hunter2", "--limit=notanint")
    line = one_error_line(result, "limit")
    assert "hunter2" not in line
    # A secret's bad value is never quoted: the config file gives `api` a number.
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"api": 12345678, "db_password": ["hunter2"]}))
    secret = run_cli("-s", TEST_SERVICES / "plugin_replyer.py", "-a", addresses_path,
                     "-c", config, "--check")
    line = one_error_line(secret, "hidden")
    assert "12345678" not in line and "hunter2" not in line
