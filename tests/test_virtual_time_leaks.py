"""The bus's virtual clock is the services' time, never the test runner's: pytest's
`--durations` and Hypothesis's deadlines keep measuring real time while a bus test moves
virtual time by hours. `memory_bus()` gives each Hypothesis example a fresh bus, with
Hypothesis's default settings."""

import re
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service_framework import Service
from service_framework_testing import memory_bus

SHOP = Path(__file__).parent / "services" / "shop.py"
ECHO = Path(__file__).parents[1] / "examples" / "echo" / "replyer.py"
START = datetime(2030, 1, 1, tzinfo=timezone.utc)
HOURS = 3 * 3600.0

DURATIONS = f"""
def test_hours_go_by(sf_bus):
    sf_bus.service({str(ECHO)!r}, config={{"prefix": "> "}})
    sf_bus.advance({HOURS})
    assert sf_bus.clock.monotonic() == {HOURS}
"""


def test_durations_report_real_time_while_a_bus_moves_virtual_time_by_hours(pytester):
    pytester.makepyfile(DURATIONS)
    result = pytester.runpytest_subprocess("--durations=3", "--durations-min=0",
                                           "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    timings = [float(seconds) for seconds in
               re.findall(r"^([\d.]+)s (?:setup|call|teardown)", result.stdout.str(), re.M)]
    assert len(timings) == 3, result.stdout.str()
    assert max(timings) < 60, result.stdout.str()  # was 1893453086.71s call


@given(hours=st.integers(1, 48))
def test_a_given_body_may_move_virtual_time_by_hours_with_default_settings(hours):
    with memory_bus(seed=hours) as bus:
        bus.service(ECHO, config={"prefix": "> "})
        bus.advance(hours * 3600)
        assert bus.clock.now() == START + timedelta(hours=hours)
        assert datetime.now(timezone.utc) == START + timedelta(hours=hours)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=10)
@given(hours=st.integers(1, 48))
def test_deadlines_stay_real_while_sf_bus_keeps_time_frozen_across_examples(sf_bus, hours):
    # One bus for every example (hence the health check): time stays frozen between them,
    # and Hypothesis's own clock must not see the jumps (was DeadlineExceeded: 1.9e12 ms).
    if not sf_bus.harnesses:
        sf_bus.service(ECHO, config={"prefix": "> "})
    before = sf_bus.clock.monotonic()
    sf_bus.advance(hours * 3600)
    assert sf_bus.clock.monotonic() - before == hours * 3600


@given(qty=st.integers(1, 20))
def test_memory_bus_gives_each_example_a_fresh_bus_and_gives_time_back(qty):
    with memory_bus() as bus:
        assert bus.clock.monotonic() == 0.0 and bus.harnesses == []
        shop = bus.service(SHOP)
        shop.stub("prices", returns={"price": Decimal("2.50")})
        reply = shop.request("quote", {"symbol": "ABC", "qty": qty})
        assert reply["at"] == START and datetime.now(timezone.utc) == START
        bus.advance(qty)
    assert datetime.now(timezone.utc).year != 2030  # unfrozen at the block's end
    assert not shop.running


def test_memory_bus_fails_a_block_that_leaves_a_service_running():
    with pytest.raises(AssertionError, match=r"left running: <Service 'replyer'"):
        with memory_bus() as bus:
            bus.freeze_time()
            Service(service_path=ECHO, transport=bus.bus, console_loglevel="WARNING",
                    addresses={"connections": {"in": {"echo": {
                        "replyer": "127.0.0.1:7000"}}}}).run_service()


def test_the_test_keeps_real_sleep_and_its_own_clock_follows_the_bus(sf_bus):
    sf_bus.service(ECHO, config={"prefix": "> "})
    started = time.monotonic()
    sf_bus.advance(5)
    assert time.monotonic() - started == pytest.approx(5.0)  # the test reads virtual time
    time.sleep(0)  # real: a test's sleep never runs the bus
    assert sf_bus.clock.monotonic() == 5.0
