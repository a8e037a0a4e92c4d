"""Main mode: `main` returns while a request is in its handler, so the stop waits on it.

The handler of a request says `marker_dir/handling`, waits until the service is stopping
(`main` returned), says `marker_dir/stopping` and waits for `marker_dir/release`: a signal
sent in between reaches a service whose `main` is over and whose stop is under way. At
exit the process waits for `marker_dir/go` (see `stop_observed.py`).
"""

from pathlib import Path

from stop_observed import mark, wait_at_exit_for_go, wait_for


def on_new_request(args, to_send, states, config):
    runtime = to_send.__self__
    mark(config, "handling")
    wait_for(lambda: runtime.stop_requested)
    mark(config, "stopping")
    wait_for((Path(config["marker_dir"]) / "release").exists)
    return {"n": args["n"]}


def init_function(to_send, states, config):
    wait_at_exit_for_go(config)


def main(to_send, config):
    wait_for((Path(config["marker_dir"]) / "handling").exists)
    return "done"


def sigterm_handler(signum, frame, to_send, states, config):
    with open(Path(config["marker_dir"]) / "signals", "a") as signals:
        signals.write("SIGTERM\n")


config_model = {"required": {"marker_dir": str}}
connection_models = {"in": {"work": {
    "connection_type": "replyer",
    "required_creation_arguments": {"on_new_request": on_new_request},
    "required_arguments": {"n": int},
    "required_return_arguments": {"n": int},
}}}
