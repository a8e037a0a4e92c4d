"""service_framework benchmarks: one table, every figure measured in this run.

    python benchmarks/run.py [--window SECONDS] [--rounds N]

Rows: request/reply and pub/sub over TCP loopback, each beside raw pyzmq with msgpack (the
same payload; the peer runs in a process of its own for both); the memory bus end to end
(codec, validation, handler); delta updates applied to an in-state; the cost of recording
a trace; the idle CPU of a running service; the peak memory of a service whose out-state
holds 100,000 price levels; seed sweeps of the order book as a scenario. Targets are
printed beside the figures with pass/miss. It never asserts: the numbers depend on the
host. Takes about two minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import zmq

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine  # noqa: E402 - after the path fix, as a script
from _inprocess import deltas, memory_bus  # noqa: E402 - after the path fix, as a script
from _scale import harness_requests, pairs_rate, thousand_services  # noqa: E402
from _simulation import seeds_per_second  # noqa: E402
from _states import late_joiner_bus, late_joiner_zmq  # noqa: E402
from _tcp import peak_memory, pubsub, request_reply  # noqa: E402

from service_framework import RequestTimeout  # noqa: E402

LATE_JOINER_LEVELS = 1_000_000


# -- the table ---------------------------------------------------------------------------------
def fmt(value: float | None, unit: str = "/s") -> str:
    if value is None:
        return "-"
    if unit == "/s":
        return f"{value:,.0f}/s"
    return f"{value:.2f}{unit}"


def verdict(ok: bool) -> str:
    return "pass" if ok else "MISS"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=float, default=1.0,
                        help="seconds per measurement window (default 1.0)")
    parser.add_argument("--rounds", type=int, default=5,
                        help="windows per figure; the median is shown (default 5)")
    options = parser.parse_args()
    window, rounds = options.window, options.rounds
    median = statistics.median

    def ratio(mine: list[float], theirs: list[float]) -> float:
        """The median of per-round ratios: each round measured both side by side."""
        return median([a / b for a, b in zip(mine, theirs, strict=True)])

    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        try:
            rr = request_reply(window, rounds, Path(tmp))
            record_error = None
        except RequestTimeout as error:  # a framework replyer did not answer
            rr, record_error = None, error
    ps = {n: pubsub(window, rounds, n) for n in (1, 10, 50)}
    mem = memory_bus(window, rounds)
    dl = deltas(window, rounds)
    rss = peak_memory()
    scale = [(pairs_rate(1, window), pairs_rate(100, window)) for _ in range(max(1, rounds // 2))]
    thousand = thousand_services()
    requests_s = median([harness_requests() for _ in range(3)])
    joiner = {"bus": late_joiner_bus(LATE_JOINER_LEVELS),
              "zmq": late_joiner_zmq(LATE_JOINER_LEVELS)}
    sweeps = [(seeds_per_second(40), seeds_per_second(40, check_determinism=True))
              for _ in range(max(1, rounds // 2))]
    elapsed = time.monotonic() - started

    rows: list[tuple[str, str, str, str, str, str]] = []
    if rr is not None:
        raw, sf, x = median(rr["raw"]), median(rr["sf"]), ratio(rr["sf"], rr["raw"])
        rows.append(("(a) request/reply round trips, tcp", fmt(sf), fmt(raw),
                     f"{x:.2f}x", ">= 0.95x raw", verdict(x >= 0.95)))
    for subscribers, figures in ps.items():
        x = ratio(figures["sf"], figures["raw"])
        rows.append((f"(b) pub/sub delivered, tcp, {subscribers} subscriber(s)",
                     fmt(median(figures["sf"])), fmt(median(figures["raw"])), f"{x:.2f}x",
                     ">= 0.50x raw", verdict(x >= 0.5)))
    mp, mr = median(mem["publish"]), median(mem["request"])
    rows.append(("(c) memory bus: publish -> handler", fmt(mp), "", "", ">= 250,000/s",
                 verdict(mp >= 250_000)))
    rows.append(("(c) memory bus: harness requests (2 msgs)", fmt(mr), "",
                 f"{2 * mr:,.0f} msgs/s", "(info)", ""))
    rows.append(("(c) floor: codec + validation alone", fmt(median(mem["floor"])), "", "",
                 "(info: bound)", ""))
    one, hundred = median([a for a, _ in scale]), median([b for _, b in scale])
    x = median([b / a for a, b in scale])
    rows.append(("(c) memory bus: 100 independent pairs", fmt(hundred), fmt(one) + " (1 pair)",
                 f"{x:.2f}x", ">= 0.70x one pair", verdict(x >= 0.7)))
    rows.append(("(c) memory bus: 1,000 services start, send, stop", f"{thousand[0]:.2f}s",
                 "", "", "runs", verdict(thousand[1])))
    rows.append(("(c) memory bus: 10,000 harness requests", f"{requests_s:.3f}s", "", "",
                 "< 0.3s", verdict(requests_s < 0.3)))
    for transport, took in joiner.items():
        rows.append((f"(d) late joiner to {LATE_JOINER_LEVELS:,} levels, {transport}",
                     f"{took:.2f}s", "", "", "<= 3s", verdict(took <= 3.0)))
    db, di = median(dl["bus"]), median(dl["in_side"])
    rows.append(("(d) deltas applied, memory bus end to end", fmt(db), "", "",
                 ">= 100,000/s", verdict(db >= 100_000)))
    rows.append(("(d) deltas applied, in side alone", fmt(di), "", "", ">= 100,000/s",
                 verdict(di >= 100_000)))
    if rr is not None and "sf+record" in rr and rr["trace_lines"][0] > 0:
        x = ratio(rr["sf+record"], rr["sf"])
        rows.append(("(e) recording: echo req/s with record_path", fmt(median(rr["sf+record"])),
                     fmt(sf), f"{x:.2f}x", ">= 0.80x plain", verdict(x >= 0.8)))
    else:
        rows.append(("(e) recording: echo req/s with record_path", "pending", "", "", "", ""))
    if rr is not None:
        cpu = rr["idle_cpu"][0]
        rows.append(("(f) idle CPU of a running service (2 s)", f"{cpu:.2f}% core", "", "",
                     "< 1%", verdict(cpu < 1.0)))
    rows.append((f"(g) peak RSS, out-state of {rss['levels']:,} levels",
                 f"{rss['hwm_kib'] / 1024:.0f} MiB", "", f"empty {rss['hwm_empty_kib'] / 1024:.0f}"
                 " MiB", "(info)", ""))
    plain = median([rate for (rate, _), _ in sweeps])
    cost = median([first[0] / second[0] for first, second in sweeps])
    rows.append(("(h) seed sweep: order book, 500 deltas, stormy", f"{plain:.1f} seeds/s", "",
                 "", ">= 20 seeds/s", verdict(plain >= 20)))
    rows.append(("(h) --sf-check-determinism cost", f"{cost:.2f}x plain", "", "", "<= 2.2x",
                 verdict(cost <= 2.2)))
    notes = []
    if rss["snapshot_levels"] != rss["levels"]:
        notes.append(f"the snapshot held {rss['snapshot_levels']} of {rss['levels']} levels")

    print(f"service_framework benchmarks - Python {platform.python_version()}, "
          f"pyzmq {zmq.pyzmq_version()} (libzmq {zmq.zmq_version()}); {machine()}; "
          f"median of {rounds} x {window:g}s windows (ratios: median of per-round ratios, "
          f"both sides measured in turn); {elapsed:.0f}s in all")
    headers = ("figure", "framework", "raw pyzmq / plain", "ratio", "target", "result")
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(6)]
    line = "  ".join("{:<%d}" % w if i == 0 else "{:>%d}" % w for i, w in enumerate(widths))
    print(line.format(*headers))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print(line.format(*row))
    if record_error is not None:
        notes.append(f"request/reply rows failed: {record_error}")
    if not dl["synced"][0]:
        notes.append("the in-state did not end equal to its out-state")
    for note in notes:
        print(f"note: {note}")


if __name__ == "__main__":
    main()
