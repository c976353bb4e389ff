"""Bounding untrusted template code: a render that runs too long is interrupted, one that grows too big refused.

Jinja2's sandbox stops unsafe attribute access but not `{% for i in range(99999) %}{% for j in
range(99999) %}` or `'x' * 10**9`. Templates are code a pull request can change, so rendering runs
under a watchdog thread that raises RenderTimeout in the rendering thread once a prompt's deadline
passes (template code is pure Python, so the exception arrives between two bytecodes), and the
sandbox refuses operations that would build huge values at once.
"""
from __future__ import annotations

import ctypes
import operator
import os
import re
from typing import Any

from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

from .deadlines import DeadlineWatch, Job

MAX_OUTPUT = 10_000_000  # characters one rendered prompt may have (about 2.5M tokens)
MAX_SECONDS = 5.0  # one prompt's render (COSTGATE_RENDER_TIMEOUT_S overrides)


def render_timeout() -> float:
    """Seconds one prompt may take to render: COSTGATE_RENDER_TIMEOUT_S when set to a positive number."""
    try:
        value = float(os.environ.get("COSTGATE_RENDER_TIMEOUT_S", MAX_SECONDS))
    except ValueError:
        return MAX_SECONDS
    return value if 0 < value < 86400 else MAX_SECONDS


class RenderTimeout(Exception):
    """Raised inside a render that ran past its deadline."""


def _raise_timeout(job: Job) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(job.thread), ctypes.py_object(RenderTimeout))


def _take_back(job: Job) -> None:  # queued but perhaps not delivered yet: cancel it
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(job.thread), None)


# While inside WATCHDOG.watch(), set `job.deadline` before each render; catch RenderTimeout around the block.
WATCHDOG = DeadlineWatch("costgate-render-watchdog", _raise_timeout, _take_back)


class LimitedSandbox(SandboxedEnvironment):
    """The sandbox, refusing operations that would build a huge string, list or number in one step: `*`, `**`,
    `+` of long values, and calls like ljust(10**9) or '{:>999999999}'.format(x)."""

    intercepted_binops = frozenset({"*", "**", "+"})

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805 - Jinja's signature
        for value in (*args, *kwargs.values()):
            if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_OUTPUT:
                raise SecurityError(f"a call with the number {value:.3g} would build a huge value (at most "
                                    f"{MAX_OUTPUT:,})")
        return SandboxedEnvironment.call(__self, __context, __obj, *args, **kwargs)

    def wrap_str_format(self, value: Any) -> Any:  # Jinja >= 3.1.5 sandboxes str.format where it is looked up
        wrapped = super().wrap_str_format(value)
        if wrapped is not None and _BIG_WIDTH.search(str(getattr(value, "__self__", ""))):
            raise SecurityError("a format width over 7 digits would build a huge value")
        return wrapped

    def call_binop(self, context: Any, operator_: str, left: Any, right: Any) -> Any:
        if operator_ == "+":
            if isinstance(left, (str, list, tuple)) and isinstance(right, (str, list, tuple)) \
                    and len(left) + len(right) > MAX_OUTPUT:
                raise SecurityError(f"'+' would build a value of over {MAX_OUTPUT:,} items")
            return operator.add(left, right)
        if operator_ == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and isinstance(times, int) and len(seq) * times > MAX_OUTPUT:
                    raise SecurityError(f"'*' would build a value of {len(seq) * times:,} items (at most {MAX_OUTPUT:,})")
            return operator.mul(left, right)
        if operator_ == "**":
            if isinstance(left, int) and isinstance(right, int) and abs(right) > 64 and abs(left) > 1:
                raise SecurityError("'**' with an exponent over 64 would build a huge number")
            return operator.pow(left, right)
        return super().call_binop(context, operator_, left, right)


_BIG_WIDTH = re.compile(r"[0-9]{8,}")


def _center(value: Any, width: int = 80) -> str:
    if not isinstance(width, int) or width > MAX_OUTPUT:
        raise SecurityError(f"center width {width!r} is over {MAX_OUTPUT:,}")
    return str(value).center(width)


def _format(value: Any, *args: Any, **kwargs: Any) -> str:
    """Jinja's `format` filter ('%s' % args) without widths that would build a huge string."""
    if _BIG_WIDTH.search(str(value)):
        raise SecurityError("a format width over 7 digits would build a huge value")
    return str(value) % (kwargs or args)


def limited_environment(loader: Any = None) -> LimitedSandbox:
    """A sandbox for templates a pull request can change (prompt templates, the PR comment template)."""
    import jinja2

    env = LimitedSandbox(loader=loader, undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False)
    env.filters["center"] = _center
    env.filters["format"] = _format
    return env
