"""A replyer whose stop the test can watch step by step, to signal it at each step.

Request 0 waits in its handler until request 1 is queued behind it, says so
(`marker_dir/handling`), then waits until the service is stopping. Request 1 is then
answered by the drain (`marker_dir/draining`), and waits there until the framework has
seen `config['signals_in_drain']` further signals. Once the service stopped, the process
waits at exit (`marker_dir/exiting`) until `marker_dir/go` exists. The signal handlers
append the signal's name to `marker_dir/signals`. Every wait has a deadline.
"""

import atexit
import time
from pathlib import Path

import zmq

WAIT_S = 20.0


def wait_for(condition) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.005)


def mark(config, name: str) -> None:
    (Path(config["marker_dir"]) / name).write_text("")


def wait_at_exit_for_go(config) -> None:
    """After "stopped" and the CLI's return, before the interpreter resets its handlers."""
    marker_dir = Path(config["marker_dir"])

    def linger() -> None:
        mark(config, "exiting")
        wait_for((marker_dir / "go").exists)

    atexit.register(linger)


def on_new_request(args, to_send, states, config):
    runtime = to_send.__self__  # the service's runtime: its socket, its stop
    if args["n"] == 0:
        socket = runtime.in_connections["work"].socket.raw
        wait_for(lambda: socket.getsockopt(zmq.EVENTS) & zmq.POLLIN)  # request 1 is queued
        mark(config, "handling")
        wait_for(lambda: runtime.stop_requested)
    else:
        mark(config, "draining")
        wait_for(lambda: runtime.signals_ignored >= config["signals_in_drain"])
    return {"n": args["n"]}


def init_function(to_send, states, config):
    wait_at_exit_for_go(config)


def _note(signum, frame, to_send, states, config, name):
    with open(Path(config["marker_dir"]) / "signals", "a") as signals:
        signals.write(name + "\n")


def sigterm_handler(signum, frame, to_send, states, config):
    _note(signum, frame, to_send, states, config, "SIGTERM")


def sigint_handler(signum, frame, to_send, states, config):
    _note(signum, frame, to_send, states, config, "SIGINT")


config_model = {"required": {"marker_dir": str}, "optional": {"signals_in_drain": int}}


def setup_config(config):
    return {"signals_in_drain": config.get("signals_in_drain", 0)}


connection_models = {"in": {"work": {
    "connection_type": "replyer",
    "required_creation_arguments": {"on_new_request": on_new_request},
    "required_arguments": {"n": int},
    "required_return_arguments": {"n": int},
}}}
