"""A hard wall-clock deadline for an HTTP request, headers included.

requests' timeouts bound each socket read, so a server that trickles one byte a second never times
out. Each connection of a guarded session records itself when it sends a request; a watchdog thread
shuts its socket down once the request's deadline passes, which makes the blocked read return at once.
"""
from __future__ import annotations

import contextlib
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any, Iterator

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

_LIVE: dict[int, Any] = {}  # thread id -> the connection that thread is using now
_LIVE_LOCK = threading.Lock()


def _mark(connection: Any) -> None:
    with _LIVE_LOCK:
        _LIVE[threading.get_ident()] = connection


class _Conn(HTTPConnection):
    def request(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        _mark(self)
        return super().request(*args, **kwargs)


class _TlsConn(HTTPSConnection):
    def request(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        _mark(self)
        return super().request(*args, **kwargs)


class _Pool(HTTPConnectionPool):
    ConnectionCls = _Conn


class _TlsPool(HTTPSConnectionPool):
    ConnectionCls = _TlsConn


class GuardedAdapter(HTTPAdapter):
    """requests' adapter whose connections can be cut when a deadline passes."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _Pool, "https": _TlsPool}


def guarded_session() -> requests.Session:
    session = requests.Session()
    adapter = GuardedAdapter()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


@dataclass
class _Guard:
    thread: int
    deadline: float
    fired: bool = False


class _Watch:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._guards: dict[int, _Guard] = {}
        self._thread: threading.Thread | None = None

    def _loop(self) -> None:
        while True:
            time.sleep(0.05)
            now = time.monotonic()
            with self._lock:
                due = [g for g in self._guards.values() if not g.fired and now > g.deadline]
                for guard in due:
                    guard.fired = True
            for guard in due:
                with _LIVE_LOCK:
                    connection = _LIVE.get(guard.thread)
                sock = getattr(connection, "sock", None)
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)

    @contextlib.contextmanager
    def limit(self, seconds: float) -> Iterator[_Guard]:
        """Within the block, this thread's request is cut off `seconds` from now; `guard.fired` says it was."""
        guard = _Guard(threading.get_ident(), time.monotonic() + seconds)
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="costgate-http-deadline", daemon=True)
                self._thread.start()
            self._guards[guard.thread] = guard
        try:
            yield guard
        finally:
            with self._lock:
                self._guards.pop(guard.thread, None)


DEADLINES = _Watch()
