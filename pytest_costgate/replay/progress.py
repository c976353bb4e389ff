"""Signs of life while a suite replays: one self-updating line on a terminal, a plain line every ~15 s in CI logs.

Nothing is shown for a suite that finishes within its first interval, so quick suites stay quiet.
"""
from __future__ import annotations

import time
from collections.abc import Callable

TTY_FIRST_S, TTY_EVERY_S = 1.0, 0.2
PLAIN_EVERY_S = 15.0
CLOCK: Callable[[], float] = time.monotonic  # the default clock (tests set a fake one)


def _duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class Progress:
    """Called with (requests done, total, errors, output tokens); writes through `write(text, final)`."""

    def __init__(self, name: str, write: Callable[[str, bool], None], tty: bool, unit: str = "requests",
                 clock: Callable[[], float] | None = None) -> None:
        clock = clock or CLOCK
        self.name, self.write, self.tty, self.unit, self.clock = name, write, tty, unit, clock
        self.start = clock()
        self.last: float | None = None
        self.shown = False

    def __call__(self, done: int, total: int, errors: int, tokens: int) -> None:
        now = self.clock()
        elapsed = now - self.start
        finished = done >= total
        if self.last is None:
            due = elapsed >= (TTY_FIRST_S if self.tty else PLAIN_EVERY_S)
        else:
            due = now - self.last >= (TTY_EVERY_S if self.tty else PLAIN_EVERY_S)
        if not (due or (finished and self.shown)):
            return
        self.last, self.shown = now, True
        rate = done / elapsed if elapsed > 0 else 0.0
        text = f"costgate {self.name}: {done:,}/{total:,} {self.unit}, {rate:,.1f}/s"
        if tokens:
            text += f", {tokens / elapsed if elapsed > 0 else 0:,.0f} tok/s"
        text += f", {errors:,} error{'s' * (errors != 1)}"
        text += f", done in {_duration(elapsed)}" if finished else (
            f", ETA {_duration((total - done) / rate)}" if rate > 0 else "")
        self.write(text, finished)
