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
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from ..safety.deadlines import DeadlineWatch, Job

_LIVE: dict[int, Any] = {}  # thread id -> the connection that thread is using now
_LIVE_LOCK = threading.Lock()


def _mark(connection: Any) -> None:
    with _LIVE_LOCK:
        _LIVE[threading.get_ident()] = connection


class _Conn(HTTPConnection):
    def request(self, *args: Any, **kwargs: Any) -> Any:
        _mark(self)
        return super().request(*args, **kwargs)


class _TlsConn(HTTPSConnection):
    def request(self, *args: Any, **kwargs: Any) -> Any:
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


def _cut(job: Job) -> None:
    """Shut the socket of the request this thread has in flight: its blocked read returns at once."""
    with _LIVE_LOCK:
        connection = _LIVE.get(job.thread)
    sock = getattr(connection, "sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


class _Deadlines(DeadlineWatch):
    def limit(self, seconds: float) -> contextlib.AbstractContextManager[Job]:
        """Within the block, this thread's request is cut off `seconds` from now; `job.fired` says it was."""
        return self.watch(time.monotonic() + seconds)


DEADLINES = _Deadlines("costgate-http-deadline", _cut)
