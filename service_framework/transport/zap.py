"""The ZAP handler of ZeroMQ (RFC 27): who may reach a CURVE server socket, per service.

pyzmq's `ThreadAuthenticator` answers ZAP requests on a thread of its own, one per ZMQ
context; each secured service is a ZAP domain whose allow-list (`curve.AllowLists`) it
applies. `zmq.py` acquires a domain when a socket becomes a CURVE server and releases it
when the socket closes; the thread stops with the last domain (or at process exit).
"""

from __future__ import annotations

import atexit
import itertools
import threading
from typing import Collection

import zmq

from .curve import AllowLists

__all__ = ["Zap", "zap_for", "stop_authenticators", "authenticator_running"]


class Zap:
    """The ZAP handler of one ZMQ context: pyzmq's `ThreadAuthenticator`, one per context.

    Each secured service is a ZAP domain with its own allow-list, so several services in a
    process never share clients. The thread starts with the first CURVE server socket and
    stops when the last one closes (or at process exit); plain sockets never start it.
    """

    def __init__(self, context: zmq.Context) -> None:
        self.context = context
        self.allow_lists = AllowLists()
        self.authenticator = None
        self._lock = threading.Lock()

    def callback(self, domain: str, client_public: bytes) -> bool:
        """pyzmq's credentials-provider interface: runs on the authenticator's thread."""
        return self.allow_lists.allows(domain, client_public)

    def acquire(self, domain: str, allowed: Collection[bytes]) -> None:
        with self._lock:
            if not self.allow_lists.add(domain, allowed):
                return
            try:
                if self.authenticator is None:
                    authenticator = _authenticator_class()(self.context)
                    authenticator.start()
                    self.authenticator = authenticator
                    _register_exit_hook()
                self.authenticator.configure_curve_callback(domain, self)
            except BaseException:
                self.allow_lists.remove(domain)
                raise

    def release(self, domain: str) -> None:
        with self._lock:
            # The domain's provider entry stays (the ZAP thread reads that dict without a
            # lock); with the domain gone from the allow-lists, it refuses everyone.
            if self.allow_lists.remove(domain) and self.allow_lists.empty:
                self._stop()

    def _stop(self) -> None:
        authenticator, self.authenticator = self.authenticator, None
        if authenticator is not None:
            authenticator.stop()

    @property
    def running(self) -> bool:
        authenticator = self.authenticator
        return authenticator is not None and authenticator.is_alive()


_ZAP_ENDPOINT = "inproc://zeromq.zap.01"  # fixed by the ZAP spec (RFC 27)
_pipe_ids = itertools.count(1)
_authenticator_cls: type | None = None


def _authenticator_class() -> type:
    """pyzmq's ThreadAuthenticator, made restartable at once in the same context.

    pyzmq closes the ZAP socket without unbinding it, and libzmq frees an inproc endpoint
    only later, on its reaper thread: a new authenticator started right after (the next
    secured service) failed with EADDRINUSE. Unbinding first frees it synchronously. The
    control pipe gets a unique name too (pyzmq names it by `id()`, which Python reuses).
    """
    global _authenticator_cls
    if _authenticator_cls is None:
        from zmq.auth.base import Authenticator
        from zmq.auth.thread import ThreadAuthenticator

        class _UnbindBeforeClose(Authenticator):
            def stop(self) -> None:
                if self.zap_socket is not None:
                    try:
                        self.zap_socket.unbind(_ZAP_ENDPOINT)
                    except zmq.ZMQError:
                        pass
                super().stop()

        class _Authenticator(ThreadAuthenticator, _UnbindBeforeClose):
            def __init__(self, context: zmq.Context) -> None:
                super().__init__(context)
                self.pipe_endpoint = f"inproc://service_framework.zap.pipe.{next(_pipe_ids)}"

        _authenticator_cls = _Authenticator
    return _authenticator_cls


_zaps: dict[int, Zap] = {}
_zaps_lock = threading.Lock()
_exit_hook_registered = False


def zap_for(context: zmq.Context) -> Zap:
    with _zaps_lock:
        zap = _zaps.get(id(context))
        if zap is None or zap.context is not context:
            zap = _zaps[id(context)] = Zap(context)
        return zap


def _register_exit_hook() -> None:
    global _exit_hook_registered
    if not _exit_hook_registered:
        _exit_hook_registered = True
        atexit.register(stop_authenticators)


def stop_authenticators() -> None:
    """Stops every ZAP thread this module started (at process exit)."""
    with _zaps_lock:
        zaps = list(_zaps.values())
    for zap in zaps:
        with zap._lock:
            zap._stop()


def authenticator_running(context: zmq.Context | None = None) -> bool:
    """Whether a ZAP authenticator of ours runs on `context` (default: the global one)."""
    context = context or zmq.Context.instance()
    with _zaps_lock:
        zap = _zaps.get(id(context))
    return zap is not None and zap.context is context and zap.running
