import pytest
from helpers import ServicePool

pytest_plugins = ["pytester"]


@pytest.fixture
def services():
    """Services started in a test; all stopped at its end, whatever happened."""
    with ServicePool() as pool:
        yield pool
