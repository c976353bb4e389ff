"""Server-sent events as OpenAI-compatible servers stream them, parsed into JSON chunks."""
from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from ..safety.errors import BackendError
from ..safety.redact import shorten


def sse_data(lines: Iterable[str]) -> Iterator[str]:
    """Yield each event's data (multi-line data joined), per the HTML SSE rules; comments skipped."""
    data: list[str] = []
    for line in lines:
        if line == "":
            if data:
                yield "\n".join(data)
                data = []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        if name == "data":
            data.append(value[1:] if value.startswith(" ") else value)
    if data:
        yield "\n".join(data)


class TruncatedStream(BackendError):
    """The stream ended without `data: [DONE]`."""


def stream_chunks(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    """JSON chunks of an OpenAI stream up to `data: [DONE]`; an error event, bad JSON or a cut raises."""
    for data in sse_data(lines):
        if data.strip() == "[DONE]":
            return
        try:
            chunk = json.loads(data)
        except json.JSONDecodeError:
            raise BackendError(f"malformed stream event (not JSON): {shorten(data, 120)!r}") from None
        if not isinstance(chunk, dict):
            raise BackendError(f"malformed stream event (not an object): {shorten(data, 120)!r}")
        if "error" in chunk and chunk["error"]:
            raise BackendError(f"server error in stream: {shorten(error_message(chunk), 300)}")
        yield chunk
    raise TruncatedStream("the stream ended without 'data: [DONE]'")


def finished(chunk: dict[str, Any]) -> bool:
    """Whether a chunk carries a finish_reason (the answer is complete even if [DONE] is missing)."""
    return any(isinstance(c, dict) and c.get("finish_reason") for c in chunk.get("choices") or ())


def chunk_text(chunk: dict[str, Any]) -> str:
    """The generated text in one chunk (chat `delta.content` or completions `text`); '' if none."""
    out = []
    for choice in chunk.get("choices") or ():
        if not isinstance(choice, dict):
            continue
        delta = choice.get("delta")
        piece = delta.get("content") if isinstance(delta, dict) else choice.get("text")
        if isinstance(piece, str):
            out.append(piece)
        message = choice.get("message")  # non-streamed response
        if isinstance(message, dict) and isinstance(message.get("content"), str):
            out.append(message["content"])
    return "".join(out)


def error_message(body: Any) -> str:
    """The human part of an OpenAI-style error body, or the body itself, whole: callers redact, then shorten
    (cutting first could leave a secret's prefix behind)."""
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
        if isinstance(err, str):
            return err
    return str(body)
