"""Migrating from 0.0.12: its module paths, its default topic, its bare command-line extras.

docs/migration.md lists every difference; these tests hold the ones a 0.0.12 service meets
first. (Whole 0.0.12-style services on the CLI: tests/test_legacy_012.py.)
"""

from __future__ import annotations

import importlib
import json
import logging
import re
import subprocess
import sys
import warnings
from typing import Any

import pytest
from helpers import REPO, make_module, run_cli

import service_framework
from service_framework import ConfigError
from service_framework.config import build_config, parse_extras
from service_framework.connections.subscriber import SILENCE_WARNING_S


# -- 1. 0.0.12's module paths ----------------------------------------------------------------
def fresh_import(name: str) -> tuple[Any, list[warnings.WarningMessage]]:
    """Imports `name` as a first import in this process would, from a service file's code,
    recording its deprecation warnings."""
    sys.modules.pop(name, None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        exec(compile(f"import {name}", "old_service.py", "exec"), {})
    return sys.modules[name], [w for w in caught if issubclass(w.category, DeprecationWarning)]


def test_logging_utils_get_logger_is_the_framework_logger_and_names_the_new_spelling():
    module, caught = fresh_import("service_framework.utils.logging_utils")
    assert module.get_logger is service_framework.get_logger
    assert module.get_logger().name == "service_framework"
    assert len(caught) == 1
    assert "from service_framework import get_logger" in str(caught[0].message)
    assert caught[0].filename == "old_service.py"  # the line that imports the old path


def test_constants_package_logger_name_is_the_framework_loggers_name():
    module, caught = fresh_import("service_framework.utils.constants")
    assert module.PACKAGE_LOGGER_NAME == "service_framework"
    assert logging.getLogger(module.PACKAGE_LOGGER_NAME) is service_framework.get_logger()
    assert len(caught) == 1 and "service_framework.get_logger()" in str(caught[0].message)


@pytest.mark.parametrize("name", ["service_framework.utils.logging_utils",
                                  "service_framework.utils.constants"])
def test_an_alias_warns_once_per_process(name):
    fresh_import(name)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        importlib.import_module(name)
        exec(f"from {name} import *", {})
    assert caught == []


OLD_STYLE = """import logging
from service_framework.utils.logging_utils import get_logger
from service_framework.utils.constants import PACKAGE_LOGGER_NAME
from service_framework.utils.logging_utils import get_logger as again

LOG = get_logger()
assert logging.getLogger(PACKAGE_LOGGER_NAME) is LOG is again()


def main(to_send, config):
    LOG.warning("old paths work")
"""


def test_a_0012_service_importing_both_paths_runs_on_the_cli(tmp_path):
    service = tmp_path / "old_style.py"
    service.write_text(OLD_STYLE)
    result = run_cli("-s", service, "-m", "-cl", "WARNING")
    assert result.returncode == 0, result.stderr
    assert "old paths work" in result.stderr
    assert "DeprecationWarning" not in result.stderr  # Python shows them when asked (-W)


def test_with_warnings_shown_each_path_warns_once_at_the_services_import_line(tmp_path):
    service = tmp_path / "old_style.py"
    service.write_text(OLD_STYLE)
    result = subprocess.run([sys.executable, "-W", "always::DeprecationWarning", "-m",
                             "service_framework", "-s", str(service), "-m", "-cl", "WARNING"],
                            cwd=REPO, capture_output=True, text=True, timeout=20)
    assert result.returncode == 0, result.stderr
    warned = [line for line in result.stderr.splitlines() if "DeprecationWarning" in line]
    assert warned == [
        f"{service}:2: DeprecationWarning: `from service_framework.utils.logging_utils import "
        "get_logger` is 0.0.12's spelling, deprecated; write `from service_framework import "
        "get_logger` (see docs/migration.md)",
        f"{service}:3: DeprecationWarning: `from service_framework.utils.constants import "
        "PACKAGE_LOGGER_NAME` is 0.0.12's spelling, deprecated; write "
        "`service_framework.get_logger()` for the framework's logger (see docs/migration.md)"]


def test_a_package_of_the_working_folder_imports_from_the_console_script_too(tmp_path):
    """0.0.12 put the working folder on sys.path; `python -m` does, the console script now
    does as well."""
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "__init__.py").write_text("GREETING = 'from the working folder'\n")
    (tmp_path / "services").mkdir()
    (tmp_path / "services" / "svc.py").write_text(
        "from shared import GREETING\n\n\ndef main(to_send, config):\n    print(GREETING)\n")
    for console_script in (True, False):
        result = run_cli("-s", "services/svc.py", "-m", "-cl", "WARNING", cwd=tmp_path,
                         console_script=console_script)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "from the working folder"


# -- 2. the default topic is the empty one ---------------------------------------------------
PORT = "127.0.0.1:7301"


def publisher_module(name: str, **creation: Any) -> Any:
    def main(to_send, config):
        for n in range(config.get("count", 3)):
            to_send("connection", name, {"n": n})

    return make_module(f"{name}_service", main=main, config_model={"optional": {"count": int}},
                       connection_models={"out": {name: {
                           "connection_type": "publisher", "required_arguments": {"n": int},
                           "optional_creation_arguments": creation}}})


def subscriber_module(name: str, **creation: Any) -> Any:
    received: list[int] = []
    module = make_module(f"{name}_service", connection_models={"in": {name: {
        "connection_type": "subscriber",
        "required_creation_arguments": {
            "on_new_message": lambda args, to_send, states, config: received.append(args["n"]),
            **creation},
        "required_arguments": {"n": int}}}})
    module.received = received
    return module


def pair(sf_bus, pub: Any, sub: Any) -> tuple[Any, Any]:
    (pub_name,) = pub.connection_models["out"]
    (sub_name,) = sub.connection_models["in"]
    listener = sf_bus.service(sub, addresses={"connections": {"in": {
        sub_name: {"subscriber": [PORT]}}}})
    talker = sf_bus.service(pub, main_mode=True, addresses={"connections": {"out": {
        pub_name: {"publisher": PORT}}}})
    return talker, listener


def silence_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno == logging.WARNING and "nothing heard" in r.getMessage()]


def test_differently_named_publisher_and_subscriber_match_by_default(sf_bus):
    sub = subscriber_module("subscribe_int")
    talker, listener = pair(sf_bus, publisher_module("publish_int"), sub)
    assert listener.service.runtime.in_connections["subscribe_int"].topic == b""
    talker.run_main()
    sf_bus.run_until_idle()
    assert sub.received == [0, 1, 2]


def test_a_subscriber_of_the_empty_topic_hears_a_publisher_with_a_topic(sf_bus):
    sub = subscriber_module("all_ticks")
    talker, _ = pair(sf_bus, publisher_module("ticks", topic="fx.eurusd"), sub)
    talker.run_main()
    sf_bus.run_until_idle()
    assert sub.received == [0, 1, 2]


def test_a_set_topic_is_matched_exactly(sf_bus):
    """ZMQ's prefix filter lets "fx.eurusd.spot" in; the subscriber of "fx.eurusd" drops it."""
    sub = subscriber_module("eurusd", topic="fx.eurusd")
    talker, listener = pair(sf_bus, publisher_module("ticks", topic="fx.eurusd.spot"), sub)
    talker.run_main()
    sf_bus.run_until_idle()
    assert sub.received == []
    assert listener.service.runtime.in_connections["eurusd"].other_topics == 3


def test_a_silent_subscriber_warns_once_naming_its_topic(sf_bus, caplog):
    caplog.set_level(logging.WARNING, logger="service_framework")
    sub = subscriber_module("orders", topic="orders")
    talker, listener = pair(sf_bus, publisher_module("fills"), sub)  # the empty topic
    talker.run_main()
    sf_bus.advance(SILENCE_WARNING_S - 1)
    assert silence_warnings(caplog) == []
    sf_bus.advance(2)
    (warning,) = silence_warnings(caplog)
    assert "connection 'orders'" in warning and "topic b'orders'" in warning
    assert PORT in warning
    sf_bus.advance(10 * SILENCE_WARNING_S)
    assert len(silence_warnings(caplog)) == 1  # once, not every interval
    assert listener.service.runtime.counters["silent_subscribers"] == 1


def test_the_warning_of_a_silent_default_subscriber_says_the_empty_topic(sf_bus, caplog):
    caplog.set_level(logging.WARNING, logger="service_framework")
    sf_bus.service(subscriber_module("quotes"), addresses={"connections": {"in": {
        "quotes": {"subscriber": [PORT]}}}})
    sf_bus.advance(SILENCE_WARNING_S + 1)
    (warning,) = silence_warnings(caplog)
    assert "topic b'' (every message)" in warning


def test_a_subscriber_that_heard_its_topic_never_warns(sf_bus, caplog):
    caplog.set_level(logging.WARNING, logger="service_framework")
    sub = subscriber_module("subscribe_int")
    talker, _ = pair(sf_bus, publisher_module("publish_int"), sub)
    talker.run_main()
    sf_bus.advance(3 * SILENCE_WARNING_S)
    assert sub.received == [0, 1, 2]
    assert silence_warnings(caplog) == []


# -- 6. bare KEY VALUE extras ----------------------------------------------------------------
MODEL = {"required": {"num_req_to_send": int}, "optional": {"echo_text": str}}


def test_bare_pairs_are_parsed_only_when_allowed_and_listed_as_bare():
    extras = parse_extras(["--echo_text", "hi", "num_req_to_send", "10"], allow_bare=True)
    assert extras == {"echo_text": "hi", "num_req_to_send": "10"}
    assert extras.bare == ("num_req_to_send",)
    with pytest.raises(ConfigError, match="unexpected command-line argument 'num_req_to_send'"):
        parse_extras(["num_req_to_send", "10"])


@pytest.mark.parametrize("tokens", [["num_req_to_send"], ["num_req_to_send", "--echo_text"],
                                    ["-x", "1"], ["--a", "1", "2"]])
def test_a_bare_key_without_its_value_is_still_an_error(tokens):
    with pytest.raises(ConfigError, match="unexpected command-line argument"):
        parse_extras(tokens, allow_bare=True)


def test_bare_keys_of_the_config_model_are_converted_with_one_deprecation_warning(caplog):
    caplog.set_level(logging.WARNING, logger="service_framework")
    extras = parse_extras(["num_req_to_send", "10", "echo_text", "a b"], allow_bare=True)
    assert build_config(MODEL, extras=extras) == {"num_req_to_send": 10, "echo_text": "a b"}
    (warning,) = [r.getMessage() for r in caplog.records if "deprecated" in r.getMessage()]
    assert "--num_req_to_send 10 --echo_text 'a b'" in warning


@pytest.mark.parametrize("model", [MODEL, None], ids=["key-not-in-model", "no-config-model"])
def test_a_bare_key_outside_the_config_model_keeps_the_clear_error(model):
    extras = parse_extras(["num_req_to_send", "10", "bogus", "1"], allow_bare=True)
    with pytest.raises(ConfigError, match="unexpected command-line argument 'bogus'"
                       if model else "unexpected command-line argument 'num_req_to_send'"):
        build_config(model, extras=extras)


CONFIG_SHOWN = """
import json

config_model = {"required": {"num_req_to_send": int}, "optional": {"echo_text": str}}


def setup_config(config):
    print(json.dumps({key: [type(value).__name__, value] for key, value in config.items()}))
"""


def test_a_0012_command_line_with_bare_extras_runs_with_one_warning_line(tmp_path):
    service = tmp_path / "requester.py"
    service.write_text(CONFIG_SHOWN)
    result = run_cli("-s", service, "--check", "-cl", "INFO", "num_req_to_send", "10",
                     "--echo_text", "hi")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[0]) == {
        "num_req_to_send": ["int", 10], "echo_text": ["str", "hi"]}
    deprecations = [line for line in result.stderr.splitlines() if "deprecated" in line]
    assert len(deprecations) == 1 and "--num_req_to_send 10" in deprecations[0]


@pytest.mark.parametrize("extras, named", [(["bogus", "1"], "bogus"),
                                           (["num_req_to_send", "ten"], "num_req_to_send")])
def test_a_bad_bare_extra_is_one_readable_line_and_exit_2(tmp_path, extras, named):
    service = tmp_path / "requester.py"
    service.write_text(CONFIG_SHOWN)
    result = run_cli("-s", service, "--check", *extras)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()[-1:]
    assert line.startswith("service_framework: error: ConfigError") and named in line
    assert "Traceback" not in result.stderr


# -- 9. the migration page ---------------------------------------------------------------------
MIGRATION = REPO / "docs" / "migration.md"


def test_the_readme_links_the_migration_page():
    readme = (REPO / "README.md").read_text()
    assert "## Migrating from 0.0.12" in readme and "(docs/migration.md)" in readme


@pytest.mark.parametrize("mentioned", [
    # this items
    "service_framework.utils.logging_utils", "PACKAGE_LOGGER_NAME", "The default topic is the "
    "empty one", "num_req_to_send 10", "`is_x_pub`", "Full-update states without a snapshot pair",
    "`wait_after_creation_s` is honoured", "second SIGTERM",
    "applied before inbound requests",
    # SPEC §14's defects of 0.0.12
    "Busy polling", "never advanced its number", "error handling in the loop",
    "requests without timeout", "`SIG_DFL`", "`datetime` and", "optional `dict`/`list`",
    "exact parameter", "config file overrode them", "`-bc` is an int", "`../` service paths",
    "whatever host the addresses", "handlers were rebuilt on every message",
    "`install_requires`",
])
def test_the_migration_page_covers(mentioned):
    assert mentioned in " ".join(MIGRATION.read_text().split())


def test_the_migration_pages_links_lead_to_its_headings():
    text = MIGRATION.read_text()
    slugs = {re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
             for line in text.splitlines() if line.startswith("#")}
    anchors = set(re.findall(r"\]\(#([\w\-]+)\)", text))
    assert anchors and anchors <= slugs, anchors - slugs
