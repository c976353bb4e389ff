"""Untrusted text made safe at the edge, one function per medium: terminal/CI log and Markdown.

Both also redact secrets, so whatever is shown passes the one redaction point.
"""
from __future__ import annotations

import contextlib
import logging
import re
import secrets
import traceback
from collections.abc import Iterable, Iterator

from .redact import redact

ZWSP = "\u200b"
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# GitHub's runner treats a line as a workflow command when it starts with `::` after leading
# whitespace, and (legacy form) when `##[` appears anywhere in it.
_COMMAND_START = re.compile(r"^(\s*):(?=:)")
_LEGACY_COMMAND = re.compile(r"##(?=\[)")


def visible(text: str) -> str:
    """Control, format (bidi, zero-width), separator and surrogate characters as escapes like \\n, \\u202e."""
    if text.isprintable():
        return text
    out = []
    for char in text:
        if char.isprintable() or char == " ":
            out.append(char)
        elif char in _NAMED:
            out.append(_NAMED[char])
        elif ord(char) < 0x100:
            out.append(f"\\x{ord(char):02x}")
        elif ord(char) < 0x10000:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(f"\\U{ord(char):08x}")
    return "".join(out)


def terminal(text: object) -> str:
    """One line for the terminal or a CI log: redacted, control characters escaped, never a workflow command."""
    line = visible(redact(str(text)))
    line = _COMMAND_START.sub("\\1:" + ZWSP, line)
    return _LEGACY_COMMAND.sub("#" + ZWSP + "#", line)


def command_safe(text: str) -> str:
    """Already-escaped text (e.g. Markdown) printed to a CI log: redacted, and no line can be a workflow command."""
    lines = redact(text).split("\n")
    return "\n".join(_LEGACY_COMMAND.sub("#" + ZWSP + "#", _COMMAND_START.sub("\\1:" + ZWSP, line)) for line in lines)


def terminal_lines(lines: Iterable[object]) -> list[str]:
    return [terminal(line) for line in lines]


def terminal_block(text: str) -> str:
    """Several lines (split on our own newlines), each made safe."""
    return "\n".join(terminal(line) for line in str(text).split("\n"))


def stop_commands() -> tuple[str, str]:
    """GitHub's documented pause of workflow-command processing: (start line, end line) with a fresh token."""
    token = secrets.token_hex(16)
    return f"::stop-commands::{token}", f"::{token}::"


_MENTION = re.compile(r"([@#])(?=[\w\d])")
_ISSUE_REF = re.compile(r"(?i)\b(GH)(-[0-9])")  # GitHub links GH-123 to issue 123
_SHA = re.compile(r"\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*[0-9])([0-9a-f]{6})(?=[0-9a-f]{1,34}\b)")  # commit links
_AUTOLINK = re.compile(r"(?i)\b(https?|ftp|mailto|www|javascript|data|vbscript|file)(?=[:.])")


def markdown_cell(value: object, limit: int = 80) -> str:
    """Text safe inside a GFM table cell or after other text on a line: no pipes, code, HTML, links, mentions or
    issue refs. (Never place a cell at the start of a line: '# x' there would be a heading.)"""
    text = visible(" ".join(redact(str(value)).split()))
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = re.sub(r"([\\`*_\[\]|~])", r"\\\1", text)
    text = _AUTOLINK.sub("\\1" + ZWSP, text)  # GFM autolinks bare URLs and www. names
    text = _ISSUE_REF.sub("\\1" + ZWSP + "\\2", text)
    text = _SHA.sub("\\1" + ZWSP, text)
    return _MENTION.sub("\\1" + ZWSP, text)  # a zero-width space stops @mentions and #123 links


class _SafeRecords(logging.Filter):
    """Log records from the libraries a backend uses (urllib3 warns with server-sent header text) made safe:
    redacted, escaped line by line, their traceback formatted without locals."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string must not hide the record
            message = str(record.msg)
        record.msg, record.args = terminal_block(message), None
        if record.exc_info:
            record.exc_text = terminal_block("".join(traceback.format_exception(*record.exc_info)).rstrip())
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = terminal_block(record.exc_text)
        if record.stack_info:
            record.stack_info = terminal_block(record.stack_info)
        return True


@contextlib.contextmanager
def safe_logging() -> Iterator[None]:
    """While a suite runs, every record reaching the root logger's handlers (pytest's captured and live logs
    among them) passes the redaction point and the terminal escaping."""
    sanitizer = _SafeRecords()
    handlers = list(logging.getLogger().handlers)
    for handler in handlers:
        handler.addFilter(sanitizer)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(sanitizer)
