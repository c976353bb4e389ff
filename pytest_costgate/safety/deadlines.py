"""Wall-clock deadlines for blocking work: one daemon thread polls the watched threads' deadlines every 50 ms
and, once a deadline passes, acts on that thread (raises in it, or cuts its socket) exactly once.

Used for template renders (watchdog.py: an exception raised in the rendering thread) and for HTTP requests
(backends/httpguard.py: the request's socket shut down, so a trickling server can't hold a read forever).
"""
from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

BUDGET_CLOCK: Callable[[], float] = time.perf_counter  # what time budgets are set and checked on (tests fake it)


def budget_now() -> float:
    """Now, on the clock a time budget's deadline is a point of (`--costgate-time-budget`, `time_budget_s`)."""
    return BUDGET_CLOCK()


@dataclass
class Job:
    """One watched thread: act on it once `time.monotonic()` passes `deadline`; `fired` says it happened."""

    thread: int
    deadline: float = float("inf")
    fired: bool = False


class DeadlineWatch:
    """`fire(job)` runs under the watch's lock, so it never races the job's end; `cancel(job)` runs (under the
    lock too) when a job that fired leaves its block, to undo what may not have been delivered yet."""

    def __init__(self, name: str, fire: Callable[[Job], None], cancel: Callable[[Job], None] | None = None) -> None:
        self._name, self._fire, self._cancel = name, fire, cancel
        self._lock = threading.Lock()
        self._jobs: dict[int, Job] = {}
        self._thread: threading.Thread | None = None

    def _loop(self) -> None:
        while True:
            time.sleep(0.05)
            now = time.monotonic()
            with self._lock:
                for job in self._jobs.values():
                    if not job.fired and now > job.deadline:
                        job.fired = True
                        self._fire(job)

    @contextlib.contextmanager
    def watch(self, deadline: float = float("inf")) -> Iterator[Job]:
        """This thread watched while inside; `deadline` (a time.monotonic() value) may be moved on the job."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
                self._thread.start()
            job = self._jobs[threading.get_ident()] = Job(threading.get_ident(), deadline)
        try:
            yield job
        finally:
            with self._lock:
                self._jobs.pop(job.thread, None)
                if job.fired and self._cancel is not None:
                    self._cancel(job)
