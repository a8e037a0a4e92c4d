"""`ServiceHarness`: drive one service's handlers and see what it sent.

The harness talks to the service through the same transport seam the service uses: on the
memory bus its requests are served inline in virtual time; on ZMQ the service runs its loop
on a thread and the harness speaks to it over real loopback sockets.
"""

from __future__ import annotations

import copy
import itertools
import os
import signal as _signal
import types
from typing import Any, Callable, Mapping, NamedTuple

from service_framework.component import SubscriptionCounter
from service_framework.errors import ArgumentError, RemoteError, RequestTimeout
from service_framework.loader import load_service
from service_framework.service import Service
from service_framework.transport.base import SocketKind, Transport
from service_framework.transport.peers import Peers
from service_framework.wire import codec
from service_framework.wire.envelope import decode_reply, encode_request

from .outbox import Outbox
from .ports import addresses_factory
from .source import StateSource

_MISSING = object()


class RaisedError(NamedTuple):
    """An exception user code raised that the service survived (it was logged)."""

    t: float  # the transport's clock (virtual seconds on the bus)
    service: str
    where: str
    error: BaseException

    def __str__(self) -> str:
        return (f"t={self.t:.6f} service {self.service!r}: {self.where} raised "
                f"{type(self.error).__name__}: {self.error}")
DEFAULT_TIMEOUT_S = 5.0


class ServiceHarness:
    """One service under test. Created by the `sf_service` fixture or `sf_bus.service()`."""

    def __init__(self, spec: str | os.PathLike | types.ModuleType, *, transport: Transport,
                 config: Mapping | str | os.PathLike | None = None,
                 addresses: Mapping | str | os.PathLike | None = None,
                 main_mode: bool = False,
                 runtime_watchers: list[Callable[[Any], None]] | None = None) -> None:
        self.transport = transport
        self.main_mode = main_mode
        definition = load_service(spec, config=config, addresses=addresses,
                                  main_mode=main_mode,
                                  addresses_for=addresses_factory(transport))
        self.service = Service.from_definition(definition, transport=transport)
        self.sent = Outbox()
        # What the service's handlers, hooks and `main` raised and the loop swallowed: a
        # test fails on them unless it expects them (`sf_bus.expect_errors`).
        self.errors: list[RaisedError] = []
        self._stubs: dict[str, Callable] = {}
        self._ids = itertools.count(1)
        self._peers = Peers(transport, "harness")  # its own sockets to the service
        self._subscriptions: dict[str, SubscriptionCounter] = {}
        self._sources: dict[str, Any] = {}
        self.service.runtime_listeners.append(self._attach)
        # (a list shared with the bus: watchers added later see later runtimes)
        self._watchers = runtime_watchers if runtime_watchers is not None else []
        self.service.run_service()
        self.settle()

    def _attach(self, runtime) -> None:
        if self.sent.record not in runtime.sent_listeners:  # a restart keeps the old ones
            runtime.sent_listeners.append(self.sent.record)
        if self._on_error not in runtime.error_listeners:
            runtime.error_listeners.append(self._on_error)
        self.apply_stubs(runtime)
        for watch in self._watchers:
            watch(runtime)

    def _on_error(self, where: str, error: BaseException) -> None:
        self.errors.append(RaisedError(self.transport.clock.monotonic(), self.name, where,
                                       error))

    def apply_stubs(self, runtime) -> None:
        """Stubs belong to the harness: a restarted service answers with them too."""
        for name, stub in self._stubs.items():
            runtime.out_connections[name].stub = stub

    # -- what the service is ------------------------------------------------------------
    @property
    def runtime(self):
        return self.service.runtime

    @property
    def name(self) -> str:
        return self.service.name

    @property
    def config(self) -> Mapping:
        return types.MappingProxyType(self.service.definition.config)

    @property
    def states(self) -> Mapping:
        return self.runtime.states

    @property
    def on_memory(self) -> bool:
        """Whether the service runs in virtual time (the memory bus): what settles has
        happened; in real time the harness waits for it."""
        return self.transport.clock.virtual

    def settle(self) -> None:
        """Lets every service finish what it can without time moving (on the memory bus;
        on real sockets there is nothing to do)."""
        self.transport.scheduler.settle()

    def _component(self, table: str, name: str, kind: str):
        found = getattr(self.runtime, table).get(name)
        if found is None or (kind and getattr(found.spec, "type", kind) != kind):
            raise ArgumentError(f"service {self.name!r} has no {kind or table} {name!r}")
        return found

    # -- sockets the harness uses to talk to the service ----------------------------------
    def _socket(self, key: tuple[str, str], kind: SocketKind, endpoint: str, *, bind: bool):
        return self._peers.get(key, kind, endpoint, bind=bind)

    def _wait(self, poller, condition: Callable[[], Any], timeout_s: float, what: str) -> Any:
        clock = self.transport.clock
        deadline = clock.monotonic() + timeout_s
        while True:
            result = condition()
            if result:
                return result
            remaining = deadline - clock.monotonic()
            if remaining <= 0:
                raise RequestTimeout(f"harness: {what} within {timeout_s:g}s")
            poller.poll(min(remaining, 0.05) if not self.on_memory else remaining)

    # -- inputs -------------------------------------------------------------------------
    def request(self, conn: str, args: Any, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> dict:
        """One request to an in replyer; returns the reply, raises RemoteError on an error reply."""
        replyer = self._component("in_connections", conn, "replyer")
        socket, poller = self._socket(("request", conn), SocketKind.DEALER,
                                      replyer.bound_endpoint, bind=False)
        rid = f"harness-{next(self._ids)}"
        socket.send([encode_request(self.runtime.new_workflow_id(), args, rid,
                                    max_bytes=self.runtime.max_message_bytes)])

        def reply():
            while (frames := socket.recv()) is not None:
                answer = decode_reply(frames[-1], max_bytes=codec.DEFAULT_MAX_MESSAGE_BYTES)
                if answer.rid == rid:
                    return [answer]
            return None

        answer = self._wait(poller, reply, timeout_s, f"no reply from {conn!r}")[0]
        self.settle()
        if answer.error is not None:
            raise RemoteError(answer.error["type"], answer.error["message"], conn)
        return answer.return_args

    def publish(self, conn: str, args: Any, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        """One message to an in subscriber; returns after its handler ran."""
        subscriber = self._component("in_connections", conn, "subscriber")
        if subscriber.is_binder:
            endpoint, bind = subscriber.bound_endpoint, False
        else:
            endpoint, bind = subscriber.endpoints("subscriber", many=True)[0], True
        socket, poller = self._socket(("publish", conn), SocketKind.XPUB, endpoint, bind=bind)
        counter = self._subscriptions.setdefault(conn, SubscriptionCounter())

        def subscribed():
            counter.read(socket)
            return counter.matching(subscriber.topic) > 0

        self._wait(poller, subscribed, timeout_s, f"subscriber {conn!r} did not subscribe")
        before = subscriber.received
        socket.send([subscriber.topic, encode_request(self.runtime.new_workflow_id(), args,
                                                      max_bytes=self.runtime.max_message_bytes)])
        if self.on_memory:
            self.settle()
        else:
            self._wait(poller, lambda: subscriber.received > before, timeout_s,
                       f"subscriber {conn!r} did not take the message")

    def stub(self, out_name: str, returns: Any = _MISSING,
             raises: BaseException | type | None = None,
             side_effect: Callable[[dict], Any] | None = None) -> None:
        """What an out requester or external_target answers from now on.

        The answer crosses the codec and is validated against the return model when used,
        like a real reply.
        """
        if sum(x is not None and x is not _MISSING for x in (returns, raises, side_effect)) != 1:
            raise ValueError("stub: give exactly one of returns=, raises=, side_effect=")
        connection = self._component("out_connections", out_name, "")
        if connection.spec.type not in ("requester", "external_target"):
            raise ArgumentError(f"stub: {out_name!r} is a {connection.spec.type}; only "
                                "requesters and external targets answer")

        def answer(args: dict) -> Any:
            # Both ways through the codec, as on a wire: what could not be sent fails here.
            args = codec.unpack(codec.pack(args))
            if raises is not None:
                raise raises
            result = side_effect(args) if side_effect else copy.deepcopy(returns)
            return codec.unpack(codec.pack(result))

        self._stubs[out_name] = answer
        connection.stub = answer

    def run_main(self) -> Any:
        """Runs `main` of a main-mode service to completion and returns its result; then
        the service stops, as in production when `main` returns (what it sent is delivered
        first). Called again, it is the service's next run: started again, globals kept."""
        if not self.main_mode:
            raise ArgumentError(f"service {self.name!r} was not created with main_mode=True")
        if self.runtime.closed:
            self.service.serve_again()
            self.settle()
        try:
            result = self.runtime.run_main()
        finally:
            self.settle()
            self.service.stop_service()
            self.settle()
        return result

    def signal(self, name: str) -> None:
        """Delivers 'SIGINT' or 'SIGTERM': the service's handler runs, then it stops."""
        if name not in ("SIGINT", "SIGTERM"):
            raise ValueError(f"signal must be 'SIGINT' or 'SIGTERM', got {name!r}")
        runtime = self.runtime
        if self.on_memory:
            runtime.run_signal_handler(name, int(getattr(_signal, name)), None)
            self.service.stop_service()
        else:
            runtime.signal(name, int(getattr(_signal, name)), None)
            self.service.stop_service()
        self.settle()

    # -- states ---------------------------------------------------------------------------
    def is_synced(self, state: str) -> bool:
        return bool(self._component("in_states", state, "").synced)

    def state_source(self, state: str):
        """A fake out side for an in-state: push snapshots, deltas, gaps, restarts."""
        if state not in self._sources:
            self._sources[state] = StateSource(self, state)
        return self._sources[state]

    def feed_state(self, state: str, args: dict, *, is_snapshot: bool = False) -> None:
        """One update to an in-state, as its out side would send it."""
        self.state_source(state).update(args, is_snapshot=is_snapshot)

    # -- the end ------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        runtime = self.service.runtime
        return runtime is not None and not runtime.closed

    def close(self) -> None:
        for source in self._sources.values():
            source.close()
        self._sources.clear()
        self.service.stop_service()
        self._peers.close()
        self._subscriptions.clear()
