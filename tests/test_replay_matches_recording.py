"""Replay that matches the recording (issue 13, part 3): the items built so far."""

from __future__ import annotations

import json

from helpers import EXAMPLES, TEST_SERVICES, free_port, run_cli

from service_framework.trace.compare import parse_masks

ECHO = EXAMPLES / "echo"


def test_mask_is_in_the_help_and_takes_a_comma_separated_list():
    help_text = run_cli("-h").stdout
    assert "--mask" in help_text and "comma-separated" in help_text
    assert parse_masks("a.b,echo:return_args.count") == parse_masks(
        ["a.b", "echo:return_args.count"]) == [(None, ["a", "b"]),
                                                ("echo", ["return_args", "count"])]


def test_mask_without_replay_is_still_a_config_extra(tmp_path):
    service = tmp_path / "svc.py"
    service.write_text("config_model = {'optional': {'mask': str}}\n")
    result = run_cli("-s", service, "--check", "--mask=on")
    assert result.returncode == 0, result.stderr


def echo_trace(tmp_path, service: str) -> str:
    path = tmp_path / "t.jsonl"
    header = {"trace": 1, "service": service, "started": "2030-01-01T00:00:00+00:00",
              "seed": 0}
    base = {"t": 0.001, "name": "echo", "workflow_id": "w1"}
    path.write_text("\n".join(json.dumps(line) for line in (
        header, {**base, "dir": "in", "kind": "request", "args": {"text": "hi"}},
        {**base, "dir": "out", "kind": "reply", "return_args": {"text": "hi", "count": 1}},
    )) + "\n")
    return str(path)


def test_a_trace_of_another_service_replays_with_a_warning_naming_both(tmp_path):
    result = run_cli("--replay", echo_trace(tmp_path, "billing"), "-s", ECHO / "replyer.py",
                     "-cl", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "recorded by service 'billing'; replaying it against 'replyer'" in result.stderr
    same = run_cli("--replay", echo_trace(tmp_path, "replyer"), "-s", ECHO / "replyer.py",
                   "-cl", "WARNING")
    assert same.returncode == 0 and "recorded by service" not in same.stderr


def test_a_main_mode_service_on_the_bus_stops_when_main_returns_as_in_production(sf_bus):
    client = sf_bus.service(EXAMPLES / "pubsub" / "publisher.py", main_mode=True,
                            config={"count": 2, "min_subscribers": 0})
    client.run_main()
    assert client.runtime.closed  # as `service_framework -m` exits when main returns
    client.run_main()  # the next run: started again, its globals kept
    assert client.runtime.closed
    assert [sent.args["n"] for sent in client.sent.to("ticks")] == [1, 2, 1, 2]


def test_the_cli_replay_reads_the_recordings_time_not_the_wall_clock(tmp_path):
    addresses = tmp_path / "a.json"
    addresses.write_text(json.dumps({"connections": {"out": {"ticks": {
        "publisher": f"127.0.0.1:{free_port()}"}}}}))
    trace = tmp_path / "clock.jsonl"
    recorded = run_cli("-s", TEST_SERVICES / "clock_reader.py", "-a", addresses, "-m",
                       "--record", trace, "-cl", "WARNING", timeout=30)
    assert recorded.returncode == 0, recorded.stderr
    events = [json.loads(line) for line in trace.read_text().splitlines()[1:]]
    replayed = run_cli("--replay", trace, "-s", TEST_SERVICES / "clock_reader.py",
                       "-cl", "WARNING", timeout=30)
    # The service's clock starts at the header's `started` (not the wall clock, not 2030):
    # what it read differs from the recording by the recording's own start-up, well under
    # a second — here on the wall clock it would be the whole time since the recording.
    actual = json.loads(replayed.stdout.split("actual:", 1)[1].split("\n", 1)[0])
    assert abs(actual["args"]["wall"] - events[0]["args"]["wall"]) < 1.0
    masked = run_cli("--replay", trace, "-s", TEST_SERVICES / "clock_reader.py",
                     "--mask", "args.at,args.wall", "-cl", "WARNING", timeout=30)
    assert masked.returncode == 0, masked.stdout + masked.stderr
