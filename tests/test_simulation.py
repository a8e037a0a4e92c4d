"""Seed sweeps (issue 10): the marker and options, the report, determinism, the shrink and
the failure traces, and handler errors that fail a test."""

import re
import subprocess
import sys
from pathlib import Path

from service_framework import InvariantViolation
from service_framework_testing.simulation import run_once, sweep
from tests.simulation.scenarios import fills_counted_once

SIM = Path(__file__).parent / "simulation"
REPO = Path(__file__).resolve().parents[1]


def run_pytest(tmp_path, source, *args):
    (tmp_path / "test_sim.py").write_text(source)
    return subprocess.run([sys.executable, "-m", "pytest", "test_sim.py", "-q",
                           "-p", "no:cacheprovider", "--rootdir", str(tmp_path), *args],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)


MARKED = f'''
import pytest, sys
sys.path.insert(0, {str(REPO)!r})
from tests.simulation.scenarios import fills_counted_once

@pytest.mark.sf_simulate(runs=100, faults="stormy")
def test_ledger(sf_bus):
    fills_counted_once(sf_bus)

@pytest.mark.sf_simulate(runs=20, faults="calm")
def test_ledger_calm(sf_bus):
    fills_counted_once(sf_bus)
'''


def test_a_marked_test_sweeps_seeds_and_reports_the_shrunk_failure(tmp_path):
    result = run_pytest(tmp_path, MARKED)
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    assert "1 failed, 1 passed" in out
    assert "reproduce: pytest 'test_sim.py::test_ledger' --sf-seed=" in out
    assert "shrunk: faults" in out and "candidate runs" in out
    assert "sf_bus.faults.duplicate(link=('exchange', 'ledger'), kind='publish'" in out
    assert "seed sweeps" in out and "20 seed(s) at level 'calm'" in out and "all passed" in out
    folder = next((tmp_path / ".sf" / "failures").glob("test_ledger-seed*"))
    assert {p.name for p in folder.glob("*.jsonl")} == {"exchange.jsonl", "ledger.jsonl"}


def test_sf_runs_sweeps_an_unmarked_sf_bus_test_from_the_command_line(tmp_path):
    source = MARKED.replace('@pytest.mark.sf_simulate(runs=100, faults="stormy")\n', "")
    result = run_pytest(tmp_path, source, "--sf-runs=3", "--sf-faults=calm", "-k", "not calm")
    assert result.returncode == 0, result.stdout
    assert "3 seed(s) at level 'calm'" in result.stdout


def test_the_shrunk_run_is_one_minimal_and_reproduces(sf_bus, tmp_path):
    result = sweep(sf_bus, fills_counted_once, runs=100, faults="stormy", artifacts=tmp_path)
    shrunk = result.shrunk
    assert shrunk is not None and len(shrunk.faults) == 1
    again = run_once(sf_bus, fills_counted_once, shrunk.seed, faults=shrunk.faults,
                     deviations=shrunk.deviations)
    assert isinstance(again.error, InvariantViolation)
    without = run_once(sf_bus, fills_counted_once, shrunk.seed, faults=[],
                       deviations=shrunk.deviations)
    assert without.error is None  # removing the last fault makes the failure go away
    report = result.report()
    assert f"faults {len(result.failure.faults)} → 1" in report


def test_the_failure_traces_replay_the_failure(sf_bus, sf_trace, tmp_path):
    result = sweep(sf_bus, fills_counted_once, runs=100, faults="stormy", artifacts=tmp_path)
    trace = result.artifacts / "ledger.jsonl"
    sf_bus.reset(0)
    session = sf_trace.replay(SIM / "ledger.py", trace, mode="none")
    applied = session.harness.service.definition.module.POSITION["applied"]
    assert len(applied) > len(set(applied))  # the duplicated fill is applied twice again


def test_a_calm_sweep_of_a_correct_scenario_passes_with_the_determinism_check(sf_bus):
    result = sweep(sf_bus, lambda bus: fills_counted_once(bus, fills=3), runs=10, faults="calm",
                   check_determinism=True)
    assert result.failure is None and result.runs == 10


def test_the_determinism_check_names_the_first_delivery_that_differs(sf_bus):
    import random as real_random

    unseeded = real_random.SystemRandom()

    def nondeterministic(bus):
        exchange, _ = fills_counted_once(bus, fills=0)
        exchange.request("trade", {"fill_id": "x", "qty": unseeded.randint(1, 10**9)})

    result = sweep(sf_bus, nondeterministic, runs=3, faults="calm", check_determinism=True,
                   artifacts=None)
    assert result.failure is not None and result.failure.seed == 0
    assert re.search(r"not deterministic: delivery 0 differs \(link harness\.trade->exchange\.",
                     str(result.failure.error))


def test_handlers_random_and_uuid4_are_seeded_per_run(sf_bus):
    import random
    import uuid

    seen = []

    def draw(bus):
        seen.append((random.random(), uuid.uuid4(), bus.random.random()))

    run_once(sf_bus, draw, 5)
    run_once(sf_bus, draw, 5)
    run_once(sf_bus, draw, 6)
    assert seen[0] == seen[1] != seen[2]


SUBSCRIBER_RAISES = f'''
import sys
sys.path.insert(0, {str(REPO)!r})
SERVICE = {str(REPO / "tests" / "services" / "raising_subscriber.py")!r}

def test_unexpected(sf_service):
    sf_service(SERVICE).publish("ticks", {{"n": 1}})

def test_expected(sf_service, sf_bus):
    sf_bus.expect_errors(ZeroDivisionError)
    sf_service(SERVICE).publish("ticks", {{"n": 1}})
'''


def test_a_handler_error_the_test_did_not_expect_fails_it(tmp_path):
    result = run_pytest(tmp_path, SUBSCRIBER_RAISES)
    assert "1 failed, 1 passed" in result.stdout, result.stdout
    assert "subscriber 'ticks'" in result.stdout or "'ticks'" in result.stdout
    assert "ZeroDivisionError" in result.stdout and "sf_bus.expect_errors" in result.stdout


def test_the_printed_regression_test_reproduces_the_failure(sf_bus, tmp_path):
    result = sweep(sf_bus, fills_counted_once, runs=100, faults="stormy", artifacts=None)
    shrunk = result.shrunk
    sf_bus.reset(shrunk.seed)  # as `pytest --sf-seed=N` gives a test
    lines = [line.strip() for line in result.report().splitlines()]
    start = next(i for i, line in enumerate(lines) if line.startswith("as a regression test"))
    for call in lines[start + 1:start + 2 + len(shrunk.faults)]:
        exec(call, {"sf_bus": sf_bus})  # the lines a user pastes
    exchange, ledger = fills_counted_once(sf_bus)
    applied = ledger.service.definition.module.POSITION["applied"]
    assert len(applied) > len(set(applied))
