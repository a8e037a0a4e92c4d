"""The multi-host run: three hosts (network namespaces, `netns.py`), a host cut off for
5 s and brought back. `test_multihost.py` asserts on it; `scripts/multihost.sh` runs it by
hand (`python tests/multihost/scenario.py`) and prints what happened.

Host A: the proxy, the order-book producer (publishing through the proxy, serving
snapshots itself), and a client asking the echo replicas on B and C. Hosts B and C: a
follower of the book and an echo replica each.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE / "services"))

from mh_producer import expected_book  # noqa: E402 - after the path fix, as a script
from netns import Hosts  # noqa: E402

REPLICA = HERE.parent / "services" / "named_replica.py"
COUNT, INTERVAL_S = 1200, 0.01  # deltas the producer publishes, about 15 s of them
CUT_S = 5.0
DEADLINE_S = 40.0
SCRAPE = "import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], " \
         "timeout=10).read().decode())"


def wait_for(condition: Callable[[], Any], what: str, timeout: float = DEADLINE_S) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.1)
    return value


@contextlib.contextmanager
def stopped_by_sigterm() -> Iterator[None]:
    """SIGTERM (a CI timeout, `kill`) raises SystemExit here, so the `finally` blocks stop
    the services and take the namespaces down instead of leaving them behind."""
    def leave(signum, frame):
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, leave)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class Scenario:
    def __init__(self, hosts: Hosts, workdir: Path) -> None:
        self.hosts, self.workdir = hosts, workdir
        a, b, c = (hosts.address(host) for host in ("a", "b", "c"))
        self.endpoints = {"xsub": f"{a}:6000", "xpub": f"{a}:6001", "snapshots": f"{a}:6002",
                          "b": f"{b}:6100", "c": f"{c}:6100",
                          # metrics, scraped from inside their host (`scrape`)
                          "metrics_a": f"{a}:9100", "metrics_b": f"{b}:9100",
                          "metrics_c": f"{c}:9100"}
        self.cut_at = self.mended_at = 0.0
        self.before_cut: dict = {}
        self.metrics: dict[str, dict[str, float]] = {}

    def _service(self, host: str, name: str, service: Path, addresses: dict,
                 *flags: str) -> subprocess.Popen:
        path = self.workdir / f"{name}_addresses.json"
        path.write_text(json.dumps(addresses))
        out = open(self.workdir / f"{name}.out", "w")
        log = open(self.workdir / f"{name}.log", "w")
        return self.hosts.run(host, [sys.executable, "-m", "service_framework", "-s",
                                     str(service), "-a", str(path), *flags],
                              stdout=out, stderr=log)

    def start(self) -> None:
        e = self.endpoints
        log = open(self.workdir / "proxy.log", "w")
        self.hosts.run("a", [sys.executable, "-m", "service_framework", "proxy", "--xsub",
                             e["xsub"], "--xpub", e["xpub"]], stdout=log, stderr=log)
        for host in ("b", "c"):
            self._service(host, f"follower_{host}", HERE / "services" / "mh_follower.py",
                          {"states": {"in": {"book": {"subscriber": e["xpub"],
                                                      "requester": e["snapshots"]}}}},
                          "--status_path", str(self.status_path(host)),
                          "--metrics", e[f"metrics_{host}"])
            self._service(host, f"replica_{host}", REPLICA,
                          {"connections": {"in": {"echo": {"replyer": e[host]}}}},
                          "--name", host)
        self._service("a", "producer", HERE / "services" / "mh_producer.py",
                      {"states": {"out": {"book": {"publisher": e["xsub"],
                                                   "replyer": e["snapshots"]}}}},
                      "-m", "--count", str(COUNT), "--interval_s", str(INTERVAL_S))
        self._service("a", "client", HERE / "services" / "mh_client.py",
                      {"connections": {"out": {"echo": {"requester": [e["b"], e["c"]]}}}},
                      "-m", "--duration_s", "120", "--metrics", e["metrics_a"])

    def status_path(self, host: str) -> Path:
        return self.workdir / f"follower_{host}.json"

    def status(self, host: str) -> dict | None:
        try:
            return json.loads(self.status_path(host).read_text())
        except (OSError, ValueError):
            return None

    def answers(self) -> list[dict]:
        path = self.workdir / "client.out"
        lines = path.read_text().splitlines() if path.exists() else []
        return [json.loads(line) for line in lines if line.startswith("{")]

    def followed(self, host: str) -> bool:
        status = self.status(host)
        return bool(status and status["synced"] and status["seq"] >= 1)

    def settled(self, host: str, samples: dict) -> bool:
        """In sync, and following by its subscription: for 0.5 s, updates arrived (seq
        moved on) and no snapshot was taken. A follower that has just synced may still lose
        the updates published before its subscription reached the producer through the
        proxy (then it resyncs, as promised); the cut starts after that."""
        status, now = self.status(host), time.monotonic()
        if not (status and status["synced"]):
            samples.pop(host, None)
            return False
        first = samples.get(host)
        if first is None or first[1] != status["snapshots"]:
            samples[host] = (now, status["snapshots"], status["seq"])
            return False
        return now - first[0] >= 0.5 and status["seq"] >= first[2] + 10

    def caught_up(self, host: str) -> bool:
        status = self.status(host)
        return bool(status and status["synced"] and status["seq"] == COUNT)

    def run(self, say: Callable[[str], None] = lambda text: None) -> None:
        self.start()
        wait_for(lambda: self.followed("b") and self.followed("c"), "both followers in sync")
        samples: dict = {}
        wait_for(lambda: all([self.settled("b", samples), self.settled("c", samples)]),
                 "both followers following, with no snapshot for 0.5 s")
        wait_for(lambda: {"b", "c"} <= {a.get("replica") for a in self.answers()},
                 "answers from both replicas")
        say("all up: both followers in sync, both replicas answering")
        self.before_cut = {host: self.status(host) for host in ("b", "c")}
        self.cut_at = time.time()
        self.hosts.cut("b")
        say(f"host b cut off for {CUT_S:g} s")
        time.sleep(CUT_S)  # the fault's own length: what happens meanwhile is checked after
        self.hosts.mend("b")
        self.mended_at = time.time()
        say("host b back")
        wait_for(lambda: self.caught_up("b") and self.caught_up("c"),
                 "both followers at the producer's last seq")
        wait_for(lambda: any(a.get("replica") == "b" and a["t"] > self.mended_at
                             for a in self.answers()), "replica b answering again")
        say("both followers caught up; replica b answers again")
        self.metrics = {host: self.scrape(host) for host in ("a", "b", "c")}

    def stop(self) -> None:
        for process in self.hosts.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.hosts.processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()

    def scrape(self, host: str) -> dict[str, float]:
        """The metrics of the service with `--metrics` on `host` (A: the client, B and C:
        the followers), read from inside that host: `{"name{labels}": value}`."""
        from prometheus_client.parser import text_string_to_metric_families

        url = f"http://{self.endpoints[f'metrics_{host}']}/metrics"
        fetch = self.hosts.run(host, [sys.executable, "-c", SCRAPE, url],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        text, errors = fetch.communicate(timeout=20)
        if fetch.returncode != 0:
            raise AssertionError(f"scraping {url} on {host} failed: {errors.decode()[-500:]}")
        return {f"{sample.name}{{{sample.labels.get('name', '')}}}": sample.value
                for family in text_string_to_metric_families(text.decode())
                for sample in family.samples}

    def wrong_values(self, host: str) -> list[str]:
        """Every value a handler on `host` saw while synced that the producer never had at
        that seq, or a seq that went back (the promise: a synced value is the producer's,
        and while recovering, handlers see the last good value)."""
        path = Path(str(self.status_path(host)) + ".updates")
        lines = path.read_text().splitlines() if path.exists() else []
        wrong, last_seq = [], 0
        for line in lines:
            update = json.loads(line)
            if not update["synced"]:
                continue
            if update["seq"] <= last_seq:
                wrong.append(f"seq {update['seq']} after {last_seq}")
            elif update["book"] != expected_book(update["seq"]):
                wrong.append(f"seq {update['seq']} ({update['kind']}): {update['book']}")
            last_seq = max(last_seq, update["seq"])
        return wrong

    def summary(self) -> dict:
        answers = self.answers()
        during = [a for a in answers if self.cut_at + 1.0 < a["t"] < self.mended_at]
        return {
            "requests": len(answers),
            "errors": [a for a in answers if "error" in a],
            "answered_during_cut": sorted({a.get("replica") or "(error)" for a in during}),
            "requests_during_cut": len(during),
            "slowest_s": max((a.get("took", 0.0) for a in answers), default=0.0),
            "b": self.status("b"), "c": self.status("c"), "expected": expected_book(COUNT),
            "wrong_values": {host: self.wrong_values(host) for host in ("b", "c")},
            "metrics": {  # what docs/deployment.md says to watch, as the services told it
                "attempts_timed_out": self.metrics["a"].get(
                    "service_framework_request_attempts_timed_out_total{echo}"),
                "request_timeouts": self.metrics["a"].get(
                    "service_framework_request_timeouts_total{echo}"),
                **{f"resyncs_{host}": self.metrics[host].get(
                    "service_framework_state_resyncs_total{book}") for host in ("b", "c")},
                **{f"synced_{host}": self.metrics[host].get(
                    "service_framework_state_synced{book}") for host in ("b", "c")},
            },
            "snapshots_since_cut": {host: self.status(host)["snapshots"]
                                    - self.before_cut[host]["snapshots"] for host in ("b", "c")},
        }


def problems(result: dict) -> list[str]:
    """What the run broke of the documented semantics; empty when it kept them all."""
    found = []
    if result["errors"]:  # every request answered: failed over, never failed
        found.append(f"{len(result['errors'])} requests failed: {result['errors'][:3]}")
    if result["requests_during_cut"] < 10:
        found.append(f"only {result['requests_during_cut']} requests during the cut")
    if result["answered_during_cut"] != ["c"]:
        found.append(f"answered during the cut by {result['answered_during_cut']}, not c alone")
    if result["slowest_s"] >= 2 * 0.5 + 0.5:  # one lost attempt on b, then c at once
        found.append(f"the slowest request took {result['slowest_s']:.2f} s")
    for host in ("b", "c"):
        status = result[host]
        if not (status["seq"] == COUNT and status["synced"]):
            found.append(f"follower {host} ended at seq {status['seq']}, synced "
                         f"{status['synced']}, not at {COUNT} in sync")
        if status["book"] != result["expected"]:
            found.append(f"follower {host} ended with another book than the producer's")
        if result["wrong_values"][host]:
            wrong = result["wrong_values"][host]
            found.append(f"follower {host} saw {len(wrong)} values the producer never had: "
                         f"{wrong[:3]}")
    metrics = result["metrics"]
    if not (metrics["attempts_timed_out"] or 0) >= 1 or metrics["request_timeouts"] != 0:
        found.append(f"the client's metrics do not show attempts lost on b and no request "
                     f"lost: {metrics}")
    if not ((metrics["resyncs_b"] or 0) >= 1 and metrics["synced_b"] == 1
            and metrics["synced_c"] == 1):
        found.append(f"the followers' metrics do not show b's resync and both in sync: "
                     f"{metrics}")
    if result["snapshots_since_cut"]["b"] < 1:
        found.append("follower b took no snapshot after the cut (it cannot have resynced)")
    if result["snapshots_since_cut"]["c"] != 0:
        found.append("follower c, never cut off, took a snapshot after the cut")
    return found


def main() -> int:
    from netns import unavailable

    reason = unavailable()
    if reason:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    hosts = Hosts.create()
    with tempfile.TemporaryDirectory() as tmp, stopped_by_sigterm():
        scenario = Scenario(hosts, Path(tmp))
        try:
            scenario.run(say=lambda text: print(f"{time.strftime('%H:%M:%S')} {text}",
                                                flush=True))
        finally:
            scenario.stop()
            hosts.destroy()
        result = scenario.summary()
    for host in ("b", "c"):
        status = result[host]
        print(f"follower {host}: seq {status['seq']}, synced {status['synced']}, snapshots "
              f"taken since the cut {result['snapshots_since_cut'][host]}, book equal to the "
              f"producer's: {status['book'] == result['expected']}, values never the "
              f"producer's: {len(result['wrong_values'][host])}")
    print(f"client: {result['requests']} requests, {len(result['errors'])} errors; during the "
          f"cut {result['requests_during_cut']} answered by {result['answered_during_cut']}; "
          f"slowest {result['slowest_s']:.2f} s")
    print("metrics: " + ", ".join(f"{key} {value:g}" if value is not None else f"{key} -"
                                  for key, value in result["metrics"].items()))
    found = problems(result)
    for problem in found:
        print(f"PROBLEM: {problem}")
    print("nothing promised was lost" if not found else f"{len(found)} problem(s)")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
