"""Prometheus metrics of one service (`--metrics HOST:PORT`, `Service(metrics=…)`).

Served over HTTP by prometheus-client from a registry of the service's own (several
services in one process never share one). Off by default, and then nothing here runs:
the runtime is only touched when metrics are on, by an event listener (what crosses the
service's edge, per connection and state) and a timer around its handlers. Everything
else — timeouts, retries, losses, seq, epoch, sync — is read from the components when
scraped, so it costs nothing between scrapes.

Labels are the service's name and its declared connections and states, and fixed words
(direction, kind): never anything a peer sends, so the number of series is bounded by the
service's own models. One exception: an in-state's `epoch` label is its out side's epoch,
cut to `EPOCH_LABEL_CHARS` (ours are 16), with one series per state at a time.

The HTTP server listens while the service runs: from its start (or `serve_again`) to its
stop; a crashed service keeps it for its restart, until `stop_service()`.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Callable, Iterator

from ..errors import ConfigError

if TYPE_CHECKING:
    from . import Runtime

PREFIX = "service_framework"
LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                   0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


EPOCH_LABEL_CHARS = 32


def parse_listen(value: str) -> tuple[str, int]:
    """`HOST:PORT` (a port of 0 picks a free one); ConfigError naming --metrics."""
    host, colon, port = str(value).rpartition(":")
    if (not colon or not host or not (port.isascii() and port.isdigit())
            or int(port) > 65535):
        raise ConfigError(f"--metrics: expected HOST:PORT, got {value!r}")
    return host.strip("[]"), int(port)


class ServiceMetrics:
    """The metrics of one service, across its restarts; `close()` stops serving them."""

    def __init__(self, service: str, listen: str) -> None:
        try:
            import prometheus_client as prometheus
        except ImportError:
            raise ConfigError("--metrics needs prometheus-client: "
                              "pip install 'service_framework[metrics]'") from None
        self.listen = listen
        self.address = parse_listen(listen)
        self.prometheus = prometheus
        self.server: Any = None
        self.thread: Any = None
        self.port: int | None = None  # while serving: the port (0 in `listen` picks one)
        self.service = service
        self.runtime: Runtime | None = None
        self.registry = prometheus.CollectorRegistry(auto_describe=False)
        self.events = prometheus.Counter(
            f"{PREFIX}_messages", "Messages across the service's edge: requests, replies, "
            "error replies, publications, state updates", ["service", "name", "direction",
                                                           "kind"], registry=self.registry)
        self.latency = prometheus.Histogram(
            f"{PREFIX}_handler_seconds", "How long handlers ran", ["service", "name"],
            buckets=LATENCY_BUCKETS, registry=self.registry)
        self.registry.register(_Components(self))

    def serve(self) -> None:
        """Listens at `listen` (again, after a stop); ConfigError when it cannot."""
        if self.thread is not None:
            return
        host, port = self.address
        try:
            self.server, self.thread = self.prometheus.start_http_server(
                port, addr=host, registry=self.registry)
        except OSError as error:
            raise ConfigError(f"--metrics: cannot listen on {self.listen}: "
                              f"{error.strerror or error}") from None
        self.port = self.server.server_port

    def attach(self, runtime: "Runtime") -> None:
        """Follows `runtime` (a service's first, or the one a restart made), and serves."""
        self.serve()
        self.runtime = runtime
        service, latency = self.service, self.latency
        if self.on_event not in runtime.event_listeners:  # a restart hands listeners on
            runtime.event_listeners.append(self.on_event)
        plain = runtime.run_handler

        def timed(handler: Callable, args: dict, workflow_id: str, name: str = "") -> Any:
            started = time.perf_counter()
            try:
                return plain(handler, args, workflow_id, name)
            finally:
                latency.labels(service, name).observe(time.perf_counter() - started)

        runtime.run_handler = timed  # the instance's: other services are not touched

    def on_event(self, event: Any) -> None:
        self.events.labels(self.service, event.name, event.dir, event.kind).inc()

    def close(self) -> None:
        if self.thread is None:
            return
        self.thread, thread = None, self.thread
        self.server.shutdown()
        self.server.server_close()
        self.port = None
        thread.join(5.0)


# What the components count themselves, read at each scrape: (key, counter or gauge, name,
# help, labels besides `service`).
_READ = (
    ("timeouts", True, "request_timeouts", "Requests that got no reply from any attempt",
     ["name"]),
    ("attempts", True, "request_attempts_timed_out",
     "Attempts that got no reply in timeout_s (each retried while attempts remain)", ["name"]),
    ("retries", True, "request_retries", "Attempts after a request's first", ["name"]),
    ("drops", True, "drops", "Messages dropped at a high-water mark or a client's budget: "
     "requests a requester's queue refused, replies a replyer could not queue", ["name"]),
    ("received", True, "subscriber_received", "Messages a subscriber took off its socket",
     ["name"]),
    ("lost", True, "publications_lost",
     "Publications a subscriber never got (dropped at a high-water mark on the way)", ["name"]),
    ("seq", False, "state_seq", "A state's last seq", ["name", "side"]),
    ("epoch", False, "state_epoch", "1 for a state's current epoch", ["name", "side", "epoch"]),
    ("synced", False, "state_synced", "1 when an in-state is in sync", ["name"]),
    ("resyncs", True, "state_resyncs",
     "Times an in-state fell out of sync (a gap, a new epoch, silence)", ["name"]),
    ("snapshot_requests", True, "state_snapshot_requests", "Snapshots an in-state asked for",
     ["name"]),
    ("snapshot_bytes", False, "state_snapshot_bytes",
     "Size of a state's last snapshot (served or taken)", ["name", "side"]),
)


class _Components:
    """A collector of what the components count themselves (`_READ`)."""

    def __init__(self, metrics: ServiceMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        runtime, service = self.metrics.runtime, self.metrics.service
        if runtime is None:
            return
        families = {key: (CounterMetricFamily if counter else GaugeMetricFamily)(
            f"{PREFIX}_{name}", text, labels=["service", *labels])
            for key, counter, name, text, labels in _READ}

        def add(key: str, labels: list[str], value: float) -> None:
            families[key].add_metric([service, *labels], value)

        for name, connection in runtime.out_connections.items():
            if hasattr(connection, "attempts_timed_out"):
                add("timeouts", [name], connection.timeouts)
                add("attempts", [name], connection.attempts_timed_out)
                add("retries", [name], connection.retries_sent)
                add("drops", [name], connection.sends_refused)
        for name, connection in runtime.in_connections.items():
            if hasattr(connection, "replies_dropped"):
                add("drops", [name], connection.replies_dropped)
            if hasattr(connection, "lost"):
                add("received", [name], connection.received)
                add("lost", [name], connection.lost)
        for side, states in (("in", runtime.in_states), ("out", runtime.out_states)):
            for name, state in states.items():
                epoch = state.sync.epoch if side == "in" else state.epoch
                add("seq", [name, side], state.seq)
                add("epoch", [name, side, str(epoch or "")[:EPOCH_LABEL_CHARS]], 1)
                add("snapshot_bytes", [name, side], state.snapshot_bytes)
                if side == "in":
                    add("synced", [name], 1 if state.synced else 0)
                    add("resyncs", [name], state.out_of_sync)
                    add("snapshot_requests", [name], state.snapshot_requests)
        yield from families.values()
