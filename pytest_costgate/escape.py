"""Untrusted text made safe at the edge, one function per medium: terminal/CI log and Markdown.

Both also redact secrets, so whatever is shown passes the one redaction point.
"""
from __future__ import annotations

import re
import secrets
from typing import Iterable

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
    return _MENTION.sub("\\1" + ZWSP, text)  # a zero-width space stops @mentions and #123 links
