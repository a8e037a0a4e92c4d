"""`service_framework-trace show TRACE`: a trace as a timeline, one line per event.

    #        t  dir  kind     name   workflow  args
    0  0.000412  in   request  echo   3f2a9c1e  text='hi', amount=1.50
    1  0.000655  out  reply    echo   3f2a9c1e  text='echo: hi', count=1, amount=1.50

The index is the one `ReplayDivergence` and ``service_framework --replay`` name.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Sequence
from uuid import UUID

from ..errors import TraceFormatError
from .reader import TraceReader

DEFAULT_WIDTH = 120


def short(value: Any, *, top: bool = False) -> str:
    """A compact, readable rendering: Decimals as numbers, datetimes in ISO 8601."""
    if isinstance(value, dict):
        items = ", ".join(f"{key if isinstance(key, str) else short(key)}="
                          f"{short(item)}" if top else f"{short(key)}: {short(item)}"
                          for key, item in value.items())
        return items if top else "{" + items + "}"
    if isinstance(value, list):
        return "[" + ", ".join(short(item) for item in value) + "]"
    if isinstance(value, tuple):
        return "(" + ", ".join(short(item) for item in value) + ("," if len(value) == 1
                                                                  else "") + ")"
    if isinstance(value, (set, frozenset)):
        return "{" + ", ".join(sorted(short(item) for item in value)) + "}" if value else "set()"
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, (timedelta, UUID)):
        return str(value)
    return repr(value)


def _clip(text: str, width: int) -> str:
    return text if width <= 0 or len(text) <= width else text[:max(1, width - 3)] + "..."


def describe(payload: dict) -> str:
    """The payload of one event, the interesting part first."""
    parts = []
    for key in ("args", "return_args"):
        if key in payload:
            value = payload[key]
            parts.append(short(value, top=True) if isinstance(value, dict) and value
                         else short(value))
    if "error" in payload:
        error = payload["error"]
        if isinstance(error, dict):
            parts.append(f"{error.get('type', 'Error')}: {error.get('message', '')}")
        else:
            parts.append(short(error))
    extra = {key: value for key, value in payload.items()
             if key not in ("args", "return_args", "error")}
    if extra:
        parts.append("(" + short(extra, top=True) + ")")
    return "  ".join(parts)


def show(path: str, *, width: int = DEFAULT_WIDTH, limit: int | None = None,
         out: Any = None) -> int:
    out = out or sys.stdout
    with TraceReader(path) as reader:
        header = reader.header
        seed = f", seed {header['seed']}" if "seed" in header else ""
        extra = f", on {header['transport']}" if "transport" in header else ""
        print(f"trace of service {header['service']!r}, started {header['started']}"
              f"{seed}{extra}", file=out)
        print(f"{'#':>5}  {'t':>10}  {'dir':<3}  {'kind':<7}  {'name':<12}  "
              f"{'workflow':<8}  args", file=out)
        count = 0
        for index, (_, event) in enumerate(reader):
            if limit is not None and index >= limit:
                print(f"  ... (stopped after {limit} events)", file=out)
                break
            line = (f"{index:>5}  {event.t:>10.6f}  {event.dir:<3}  {event.kind:<7}  "
                    f"{event.name:<12}  {event.workflow_id[:8]:<8}  ")
            print(line + _clip(describe(event.payload), width - len(line)), file=out)
            count += 1
        else:
            print(f"{count} event(s)", file=out)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="service_framework-trace",
                                     description="Read service_framework traces (JSON Lines).")
    commands = parser.add_subparsers(dest="command", required=True)
    show_parser = commands.add_parser("show", help="print a trace as a timeline")
    show_parser.add_argument("trace", help="path of the trace (JSON Lines)")
    show_parser.add_argument("--width", type=int, default=DEFAULT_WIDTH,
                             help=f"clip lines to this many characters (default "
                                  f"{DEFAULT_WIDTH}; 0: never)")
    show_parser.add_argument("--limit", type=int, default=None,
                             help="print at most this many events")
    options = parser.parse_args(argv)
    try:
        return show(options.trace, width=options.width, limit=options.limit)
    except TraceFormatError as error:
        print(f"service_framework-trace: error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `… | head`
        return 0


if __name__ == "__main__":
    sys.exit(main())
