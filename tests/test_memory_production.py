"""A whole topology in one process on a wall-clock memory bus, as in production."""

import threading
import time
from pathlib import Path

from service_framework import Service
from service_framework.transport.memory import MemoryBus, WallClock

EXAMPLES = Path(__file__).parents[1] / "examples"
ECHO = EXAMPLES / "echo"


def test_a_requester_and_a_replyer_talk_on_a_wall_clock_bus():
    bus = MemoryBus(clock=WallClock())
    replyer = Service(service_path=ECHO / "replyer.py", addresses=ECHO / "addresses.json",
                      config=ECHO / "replyer_config.json", transport=bus)
    requester = Service(service_path=ECHO / "requester.py", addresses=ECHO / "addresses.json",
                        config={"count": 3}, transport=bus)
    replyer.run_service()
    try:
        requester.run_service_as_main_blocking()
        assert requester.main_error is None
    finally:
        replyer.stop_service()
    assert bus.open_sockets() == []


def test_a_blocking_run_sleeps_while_idle_and_stops_from_another_thread():
    bus = MemoryBus(clock=WallClock())
    replyer = Service(service_path=ECHO / "replyer.py", addresses=ECHO / "addresses.json",
                      transport=bus)
    stopper = threading.Timer(0.5, replyer.stop_service)
    started = time.process_time()
    stopper.start()
    replyer.run_service_blocking()  # returns once stopped
    stopper.join()
    assert replyer.wait_stopped(0)
    assert time.process_time() - started < 0.2  # asleep, not spinning, while idle
