"""Main mode: `main` marks that it runs, then works until a signal ends it."""

import time
from pathlib import Path


def main(to_send, config):
    marker_dir = Path(config["marker_dir"])
    (marker_dir / "main_started").write_text("yes")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # busy with "work" until interrupted
        time.sleep(0.05)
    (marker_dir / "main_finished").write_text("yes")


def sigterm_handler(signum, frame, to_send, states, config):
    (Path(config["marker_dir"]) / "SIGTERM").write_text(str(signum))


def sigint_handler(signum, frame, to_send, states, config):
    (Path(config["marker_dir"]) / "SIGINT").write_text(str(signum))


config_model = {"required": {"marker_dir": str}}
