"""`service_framework -s svc.py …`: run, check, record or replay a service.

`replay` is the replay of a service from its file (``--replay``): the walk itself is the
trace package's `ReplayDriver`.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import traceback
from typing import Any, Iterable, Mapping, Sequence

from ..addresses import load_addresses
from ..config import parse_extras
from ..errors import (
    ArgumentError,
    ConfigError,
    ModelError,
    ReplayDivergence,
    ReplayError,
    TraceFormatError,
)
from ..loader import load_service
from ..logs import check_level, get_logger, setup_logging
from ..security import keygen
from ..service import Service
from ..trace import ReplayDriver, ReplayReport, Trace, memory_addresses, read_trace, started_at
from ..trace.module_clock import follow_clock
from ..transport.memory import MemoryBus

EXIT_OK, EXIT_CRASH, EXIT_LOAD_ERROR = 0, 1, 2
LOAD_ERRORS = (ModelError, ConfigError, ArgumentError)


def build_parser() -> argparse.ArgumentParser:
    """The framework's flags (`--mask` means something only with `--replay`; without it,
    `main` hands it on as the config extra it was in 0.0.12)."""
    parser = argparse.ArgumentParser(
        prog="service_framework", allow_abbrev=False,  # `--log x` is an extra, never `-l`
        description="Run a service_framework service over ZeroMQ.",
        epilog="Any other --KEY VALUE or --KEY=VALUE is a config value, converted to the "
               "type config_model gives it. Exit status: 0 clean stop, 1 crash, "
               "2 load/config/address error. Other commands: `service_framework proxy "
               "--xsub ENDPOINT --xpub ENDPOINT` (a fan-out proxy), `service_framework "
               "topology ADDRESSES... [-s SERVICE...]` (a picture of the system); -h on "
               "each.")
    parser.add_argument("-s", dest="service_path",
                        help="path of the service module (relative, ../ or absolute)")
    parser.add_argument("-a", dest="addresses_path",
                        help="addresses JSON file (connections/states, in/out)")
    parser.add_argument("-c", dest="config_path",
                        help="config JSON file (flat, or required/optional sections)")
    parser.add_argument("-m", dest="main_mode", action="store_true",
                        help="run main(to_send, config); stop when it returns")
    parser.add_argument("-cl", dest="console_loglevel", default="INFO",
                        help="console log level (DEBUG, INFO, WARNING, ERROR); DEBUG also "
                             "prints tracebacks of load errors")
    parser.add_argument("-f", dest="file_loglevel", default="INFO",
                        help="log file level (with -l)")
    parser.add_argument("-bc", dest="backup_count", type=int, default=24,
                        help="hourly log files to keep (with -l), an integer")
    parser.add_argument("-l", dest="log_path",
                        help="log file path; rotated every hour")
    parser.add_argument("--record", metavar="TRACE", dest="record_path",
                        help="record every message in and out to this JSON Lines trace")
    parser.add_argument("--replay", metavar="TRACE", dest="replay_path",
                        help="replay a trace against the service on the memory bus; "
                             "exit 0 if it sends what was recorded, 1 at the first divergence")
    parser.add_argument("--config-from-trace", action="store_true",
                        help="with --replay: run with the config recorded in the trace's "
                             "header (checked by config_model) instead of -c and flags")
    parser.add_argument("--mask", metavar="KEY.PATH[,KEY.PATH…]", action="append",
                        dest="mask", default=[],
                        help="with --replay: fields not to compare (volatile ones), e.g. "
                             "return_args.count or book:args.updated_time; comma-separated "
                             "or repeated")
    parser.add_argument("--metrics", metavar="HOST:PORT",
                        help="serve Prometheus metrics over HTTP there (needs "
                             "prometheus-client: pip install 'service_framework[metrics]')")
    parser.add_argument("--check", action="store_true",
                        help="load and validate service, config and addresses, print a "
                             "summary, exit 0 (or 2) without binding anything")
    parser.add_argument("--keygen", metavar="DIR",
                        help="write a CurveZMQ key pair into DIR and exit")
    return parser


def _summary(definition) -> str:
    lines = [f"service {definition.name}: OK"]
    for (side, name), spec in sorted(definition.connections.items()):
        lines.append(f"  connection {side:3} {name}: {spec.type}")
    for (side, name), spec in sorted(definition.states.items()):
        lines.append(f"  state      {side:3} {name}: {spec.type}")
    lines.append(f"  config keys: {', '.join(sorted(definition.config)) or 'none'}")
    if definition.security is not None:
        lines.append(f"  security: {definition.security.summary()}")
    if (note := _main_without_m(definition)) is not None:
        lines.append(f"  note: {note}")
    return "\n".join(lines)


def _main_without_m(definition) -> str | None:
    """The word a service with `main` started without -m deserves: else it serves forever
    and its main never runs, silently."""
    if definition.main_mode or not callable(getattr(definition.module, "main", None)):
        return None
    return (f"{definition.name} defines main() but runs without -m: main will not run; "
            "add -m to run it (main mode)")


# Commands other than running a service: `service_framework COMMAND …`.
SUBCOMMANDS = ("proxy", "topology")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in SUBCOMMANDS:
        from importlib import import_module

        return import_module(f".{argv[0]}", __name__).main(argv[1:])
    parser = build_parser()
    options, rest = parser.parse_known_args(argv)
    if not options.replay_path and options.mask:  # not replaying: a config value `mask`
        rest += [f"--mask={value}" for value in options.mask]
        options.mask = []
    debug = str(options.console_loglevel).upper() == "DEBUG"
    try:
        return _run(parser, options, rest)
    except LOAD_ERRORS as error:
        if debug:
            traceback.print_exc()
        print(f"service_framework: error: {type(error).__name__}: {error}", file=sys.stderr)
        return EXIT_LOAD_ERROR


def _run(parser: argparse.ArgumentParser, options: argparse.Namespace, rest: list[str]) -> int:
    if options.keygen:
        for path in keygen(options.keygen):
            print(path)
        return EXIT_OK
    if not options.service_path:
        parser.print_usage(sys.stderr)
        print("service_framework: error: -s/--service is required", file=sys.stderr)
        return EXIT_LOAD_ERROR
    check_level(options.console_loglevel)
    check_level(options.file_loglevel)
    extras = parse_extras(rest, allow_bare=True)  # 0.0.12's `KEY VALUE`: see build_config
    if options.replay_path:
        return _replay_command(options, extras)
    if options.check:
        definition = load_service(options.service_path, config=options.config_path,
                                  extras=extras, addresses=options.addresses_path,
                                  main_mode=options.main_mode)
        print(_summary(definition))
        return EXIT_OK

    service = Service(service_path=options.service_path, config=options.config_path,
                      addresses=options.addresses_path,
                      console_loglevel=options.console_loglevel, log_path=options.log_path,
                      file_loglevel=options.file_loglevel, backup_count=options.backup_count,
                      record_path=options.record_path, extras=extras,
                      metrics=options.metrics)
    if not options.main_mode and (note := _main_without_m(service.definition)) is not None:
        print(f"service_framework: warning: {note}", file=sys.stderr)
    try:
        if options.main_mode:
            service.run_service_as_main_blocking()
            return EXIT_CRASH if service.main_error is not None else EXIT_OK
        service.run_service_blocking()
    except LOAD_ERRORS:
        raise
    except Exception:
        get_logger().exception("service crashed")
        return EXIT_CRASH
    return EXIT_OK


def replay(trace: Trace | str | os.PathLike, service: Any, *,
           config: Mapping | str | os.PathLike | None = None,
           extras: Mapping[str, str] | None = None,
           addresses: Mapping | str | os.PathLike | None = None,
           main_mode: bool | None = None, mask: Iterable[str] | str = (),
           follow_time: bool = True, config_from_trace: bool = False) -> ReplayReport:
    """Replays `trace` against `service` (a path or module) on a memory bus of its own.

    The service runs with its own config (`config`, `extras`, its defaults): a trace is
    data and must not choose what a service imports or connects to. With
    `config_from_trace` the header's config is used instead, checked by `config_model` as
    any config is (its secrets were never recorded). Main mode comes from the header
    unless given. Without `addresses` every socket gets a
    name on the replay's bus; given ones are used without their `security` section.
    Raises `ReplayDivergence` at the first difference; returns a `ReplayReport` when
    everything matched.
    """
    if not isinstance(trace, Trace):
        trace = read_trace(trace)
    header = trace.header
    if config_from_trace:
        if config is not None or extras:
            raise ReplayError("config_from_trace takes the trace's config: give no other")
        config = trace.config
    if main_mode is None:
        main_mode = bool(header.get("main_mode", False))
    if addresses is not None:  # a replay runs in-process: CurveZMQ has nothing to guard
        addresses = {key: value for key, value in load_addresses(addresses).items()
                     if key != "security"}
    seed = header.get("seed")
    bus = MemoryBus(seed=seed if isinstance(seed, int) else 0, start=started_at(header),
                    record_deliveries=False)  # nobody reads it: a long replay stays small
    definition = load_service(service, config=config, extras=extras, addresses=addresses,
                              main_mode=main_mode, addresses_for=memory_addresses)
    driver = ReplayDriver(trace, bus, mask=mask, follow_time=follow_time)
    instance = Service.from_definition(definition, transport=bus)
    instance.runtime_listeners.append(driver.watch)
    # What the service reads of time is the replay's: the recording's start plus t.
    restore_time = follow_clock(definition.module, bus.clock, bus.scheduler.sleep)
    instance.run_service()
    try:
        return driver.run()
    finally:
        driver.finish()
        driver.close()
        instance.stop_service()
        restore_time()


def _replay_command(options: Any, extras: Mapping[str, str]) -> int:
    """``service_framework --replay TRACE -s svc.py``: 0 when it matches, 1 at a divergence."""
    setup_logging(options.console_loglevel, options.log_path, options.file_loglevel,
                  int(options.backup_count))
    try:
        trace = read_trace(options.replay_path, stream=True)  # events read as they are fed
    except TraceFormatError as error:
        print(f"service_framework: error: {error}", file=sys.stderr)
        return 2
    try:
        report = replay(trace, options.service_path, config=options.config_path,
                        extras=extras or None, addresses=options.addresses_path,
                        main_mode=True if options.main_mode else None,
                        mask=getattr(options, "mask", None) or (),
                        config_from_trace=options.config_from_trace)
    except ReplayDivergence as divergence:
        print(divergence, flush=True)
        return 1
    except (ReplayError, TraceFormatError) as error:
        print(f"service_framework: error: {error}", file=sys.stderr)
        return 2
    finally:
        trace.events.close()  # type: ignore[attr-defined]
    print(report, flush=True)
    return 0


def entry_point() -> None:
    status = main()
    # The service has stopped and the process is about to exit: a late SIGTERM or SIGINT
    # (`timeout` sends TERM twice) must not turn a clean stop into 143 or 130.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, signal.SIG_IGN)
    sys.exit(status)
