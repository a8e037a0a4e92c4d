"""Main mode: `main` waits on a request nobody answers; the SIGINT handler uses the same
requester. The handler must run after `main` let go of the connection, not inside it."""

from pathlib import Path


def main(to_send, config):
    (Path(config["marker_dir"]) / "main_started").write_text("yes")
    while True:
        try:
            to_send("connection", "nobody", {})
        except Exception:
            pass


def sigint_handler(signum, frame, to_send, states, config):
    try:
        to_send("connection", "nobody", {})
    except Exception as error:
        (Path(config["marker_dir"]) / "SIGINT").write_text(type(error).__name__)


config_model = {"required": {"marker_dir": str}}
connection_models = {"out": {"nobody": {
    "connection_type": "requester",
    "optional_creation_arguments": {"timeout_s": 0.3},
}}}
