"""The same harness test file is green on the memory bus and on real ZMQ."""

from pathlib import Path

HARNESS_TESTS = Path(__file__).with_name("test_harness.py")


def test_the_harness_test_file_runs_green_with_sf_transport_both(pytester):
    result = pytester.runpytest_subprocess(str(HARNESS_TESTS), "--sf-transport=both",
                                           "-p", "no:cacheprovider", "-q")
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) == 0 and outcomes.get("errors", 0) == 0, result.stdout.str()
    tests_in_file = HARNESS_TESTS.read_text().count("\ndef test_")
    assert outcomes["passed"] == 2 * tests_in_file  # every test once per transport
