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

from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
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

    intercepted_binops = frozenset({"*", "**", "+", "%"})
    code_generator_class: type = None  # type: ignore[assignment]  # set below: `~` joins through bounded_concat

    def bounded_concat(self, parts: Any) -> str:
        """`a ~ b ~ c`, refused past MAX_OUTPUT characters (Jinja's own join has no sandbox hook)."""
        texts = [str(p) for p in parts]
        if sum(map(len, texts)) > MAX_OUTPUT:
            raise SecurityError(f"'~' would build a text of over {MAX_OUTPUT:,} characters")
        return "".join(texts)

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
        if operator_ == "%":
            if isinstance(left, str) and _BIG_WIDTH.search(left):
                raise SecurityError("a format width over 7 digits would build a huge value")
            return operator.mod(left, right)
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


def _indent(value: Any, width: Any = 4, first: bool = False, blank: bool = False) -> str:
    """Jinja's `indent` filter, without widths that would build a huge string."""
    if isinstance(width, int) and width > 10_000 or isinstance(width, str) and len(width) > 10_000:
        raise SecurityError(f"indent width {str(width)[:20]!r} is over 10,000")
    from jinja2.filters import do_indent

    text = do_indent(str(value), width, first, blank)
    if len(text) > MAX_OUTPUT:
        raise SecurityError(f"indent would build a text of over {MAX_OUTPUT:,} characters")
    return text


def harden(env: SandboxedEnvironment) -> SandboxedEnvironment:
    """The filters that could build a huge value in one call, bounded (every sandbox costgate makes has them)."""
    env.filters["center"] = _center
    env.filters["format"] = _format
    env.filters["indent"] = _indent
    return env


def limited_environment(loader: Any = None) -> LimitedSandbox:
    """A sandbox for templates a pull request can change (prompt templates, the PR comment template)."""
    import jinja2

    env = LimitedSandbox(loader=loader, undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False)
    harden(env)
    return env


def bounded_render(template: Any, context: Any) -> str:
    """template.render, but stopped as soon as the output passes MAX_OUTPUT characters (render() would build all
    of it first)."""
    pieces = []
    size = 0
    for piece in template.generate(context):
        size += len(piece)
        if size > MAX_OUTPUT:
            raise SecurityError(f"the template renders over {MAX_OUTPUT:,} characters")
        pieces.append(piece)
    return "".join(pieces)


class _BoundedGenerator(CodeGenerator):
    """Jinja's code generator, with `~` compiled to the sandbox's bounded join."""

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.bounded_concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


LimitedSandbox.code_generator_class = _BoundedGenerator
