"""Server-sent events as model APIs stream them (OpenAI, Anthropic, Gemini), parsed into JSON events."""
from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from ..safety.errors import BackendError
from ..safety.redact import server_text, shorten


def sse_data(lines: Iterable[str]) -> Iterator[str]:
    """Yield each event's data (multi-line data joined), per the HTML SSE rules; comments skipped."""
    data: list[str] = []
    size = 0
    for line in lines:
        if line == "":
            if data:
                yield "\n".join(data)
                data, size = [], 0
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        if name == "data":
            data.append(value[1:] if value.startswith(" ") else value)
            size += len(value)
            if size > MAX_EVENT_CHARS:  # an event that never ends is refused as it grows, not once it is whole
                raise BackendError(f"a stream event is over {MAX_EVENT_CHARS >> 20} MiB; not an event stream")
    if data:
        yield "\n".join(data)


class TruncatedStream(BackendError):
    """The stream ended without `data: [DONE]`."""


MAX_EVENT_CHARS = 4 << 20  # one event's data: a token chunk is a few hundred bytes


def json_events(lines: Iterable[str], done: str | None = "[DONE]") -> Iterator[dict[str, Any]]:
    """The JSON object of each event, up to the `done` data line (OpenAI's '[DONE]') when the API ends its streams
    with one (else to the stream's end); an error event, bad JSON, an oversized event or a cut raises."""
    for data in sse_data(lines):
        if len(data) > MAX_EVENT_CHARS:
            raise BackendError(f"a stream event is over {MAX_EVENT_CHARS >> 20} MiB; not an event stream")
        if done is not None and data.strip() == done:
            return
        try:
            event = json.loads(data)
        except json.JSONDecodeError:
            raise BackendError(f"malformed stream event (not JSON): {shorten(data, 120)!r}") from None
        if not isinstance(event, dict):
            raise BackendError(f"malformed stream event (not an object): {shorten(data, 120)!r}")
        if event.get("error") or event.get("type") in ("error", "response.failed"):
            raise BackendError(f"server error in stream: {server_text(error_message(event))}")
        yield event
    if done is not None:
        raise TruncatedStream(f"the stream ended without 'data: {done}'")


def error_message(body: Any) -> str:
    """The human part of an OpenAI-style error body, or the body itself, whole: callers redact, then shorten
    (cutting first could leave a secret's prefix behind)."""
    if isinstance(body, dict):
        if isinstance(body.get("response"), dict) and body["response"].get("error"):  # Responses: response.failed
            body = body["response"]
        err = body.get("error", body)
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
        if isinstance(err, str):
            return err
    return str(body)
