"""`service_framework -s svc.py …`: run, check, record or replay a service."""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from .errors import ArgumentError, ConfigError, ModelError

EXIT_OK, EXIT_CRASH, EXIT_LOAD_ERROR = 0, 1, 2
LOAD_ERRORS = (ModelError, ConfigError, ArgumentError)


def build_parser(replaying: bool = True) -> argparse.ArgumentParser:
    """The framework's flags; `--mask` exists only with `--replay`, else it is a config extra."""
    parser = argparse.ArgumentParser(
        prog="service_framework", allow_abbrev=False,  # `--log x` is an extra, never `-l`
        description="Run a service_framework service over ZeroMQ.",
        epilog="Any other --KEY VALUE or --KEY=VALUE is a config value, converted to the "
               "type config_model gives it. Exit status: 0 clean stop, 1 crash, "
               "2 load/config/address error.")
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
    if replaying:
        parser.add_argument("--mask", metavar="KEY.PATH", action="append", dest="mask",
                            help="with --replay: a volatile field not to compare, e.g. "
                                 "return_args.count or args.updated_time (repeatable)")
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
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    replaying = any(arg == "--replay" or arg.startswith("--replay=") for arg in argv)
    parser = build_parser(replaying)
    options, rest = parser.parse_known_args(argv)
    debug = str(options.console_loglevel).upper() == "DEBUG"
    try:
        return _run(parser, options, rest)
    except LOAD_ERRORS as error:
        if debug:
            import traceback

            traceback.print_exc()
        print(f"service_framework: error: {type(error).__name__}: {error}", file=sys.stderr)
        return EXIT_LOAD_ERROR


def _run(parser: argparse.ArgumentParser, options: argparse.Namespace, rest: list[str]) -> int:
    from .config import parse_extras

    if options.keygen:
        from .security import keygen

        for path in keygen(options.keygen):
            print(path)
        return EXIT_OK
    if not options.service_path:
        parser.print_usage(sys.stderr)
        print("service_framework: error: -s/--service is required", file=sys.stderr)
        return EXIT_LOAD_ERROR
    from .logs import check_level

    check_level(options.console_loglevel)
    check_level(options.file_loglevel)
    extras = parse_extras(rest)
    if options.replay_path:
        from .replay import replay_cli

        return replay_cli(options, extras)
    if options.check:
        from .loader import load_service

        definition = load_service(options.service_path, config=options.config_path,
                                  extras=extras, addresses=options.addresses_path,
                                  main_mode=options.main_mode)
        print(_summary(definition))
        return EXIT_OK

    from .service import Service

    service = Service(service_path=options.service_path, config=options.config_path,
                      addresses=options.addresses_path,
                      console_loglevel=options.console_loglevel, log_path=options.log_path,
                      file_loglevel=options.file_loglevel, backup_count=options.backup_count,
                      record_path=options.record_path, extras=extras)
    try:
        if options.main_mode:
            service.run_service_as_main_blocking()
            return EXIT_CRASH if service.main_error is not None else EXIT_OK
        service.run_service_blocking()
    except LOAD_ERRORS:
        raise
    except Exception:
        from .logs import get_logger

        get_logger().exception("service crashed")
        return EXIT_CRASH
    return EXIT_OK


def entry_point() -> None:
    sys.exit(main())
