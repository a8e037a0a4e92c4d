"""Seed sweeps find bugs that only some fault and schedule reveal (issue 10, item 9).

Each scenario (`tests/simulation/scenarios.py`) runs services with a planted bug and states
the invariant the bug breaks. A sweep at a fault level finds it within 200 seeds and
shrinks the failing run to at most two faults; both are asserted.
"""

import pytest

from service_framework import InvariantViolation
from service_framework_testing.simulation import sweep
from tests.simulation.scenarios import (
    fills_counted_once,
    orders_charged_once,
    orders_within_limits,
    ticks_keep_their_pace,
)


@pytest.mark.parametrize("scenario, level", [
    (fills_counted_once, "stormy"),
    (orders_charged_once, "stormy"),
    (orders_within_limits, "stormy"),
])
def test_a_sweep_finds_the_planted_bug_and_shrinks_it(sf_bus, tmp_path, scenario, level):
    result = sweep(sf_bus, scenario, runs=200, faults=level, name=scenario.__name__,
                   artifacts=tmp_path)
    assert result.failure is not None, result.summary()
    assert isinstance(result.failure.error, InvariantViolation), result.report()
    shrunk = result.shrunk
    assert shrunk is not None and 1 <= len(shrunk.faults) <= 2, result.report()
    print(result.report())


def test_a_hostile_sweep_finds_a_healthy_subscriber_starving_behind_a_stalled_one(
        sf_bus, tmp_path):
    result = sweep(sf_bus, ticks_keep_their_pace, runs=200, faults="hostile",
                   name="ticks_keep_their_pace", artifacts=tmp_path)
    assert result.failure is not None, result.summary()
    assert isinstance(result.failure.error, InvariantViolation), result.report()
    shrunk = result.shrunk
    assert shrunk is not None and 1 <= len(shrunk.faults) <= 2, result.report()
    assert any(fault.action in ("stall", "crash") for fault in shrunk.faults), result.report()
