"""A replyer whose init and signal handlers leave marker files in `marker_dir`."""

from pathlib import Path


def on_new_request(args, to_send, states, config):
    return {"pong": args["ping"]}


def init_function(to_send, states, config):
    (Path(config["marker_dir"]) / "init").write_text("ran")


def sigterm_handler(signum, frame, to_send, states, config):
    (Path(config["marker_dir"]) / "SIGTERM").write_text(str(signum))


def sigint_handler(signum, frame, to_send, states, config):
    (Path(config["marker_dir"]) / "SIGINT").write_text(str(signum))


config_model = {"required": {"marker_dir": str}}
connection_models = {"in": {"ping": {
    "connection_type": "replyer",
    "required_creation_arguments": {"on_new_request": on_new_request},
    "required_arguments": {"ping": int},
    "required_return_arguments": {"pong": int},
}}}
