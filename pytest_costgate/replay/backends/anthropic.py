"""Anthropic's Messages API (`backend: anthropic`): the key in `x-api-key`, `anthropic-version`, system messages
in `system`, streamed events (message_start, content_block_*, message_delta, message_stop) whose usage comes in
message_start and, cumulatively, in message_delta."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from ...safety.errors import BackendError
from . import Completion, Request
from .http import HttpBackend, Reader, model_name, tool_call_text
from .openai_options import check_http
from .usage import anthropic

DEFAULT_URL = "https://api.anthropic.com"
VERSION = "2023-06-01"


def check_options(options: Mapping[str, Any], fail: Callable[[str, str], Exception]) -> None:
    check_http(options, fail, DEFAULT_URL, count_tokens=True)
    version = options.get("anthropic_version", VERSION)
    if not isinstance(version, str) or not version.strip() or len(version) > 40:
        raise fail("anthropic_version", f"expected the API version header's value, e.g. {VERSION}.")


def messages_url(base_url: str, path: str = "/messages") -> str:
    """{base}/v1/messages, whether base_url names the host (as ANTHROPIC_BASE_URL does) or ends in /v1."""
    return base_url + ("" if base_url.endswith("/v1") else "/v1") + path


def messages_body(model: str, request: Request) -> dict[str, Any]:
    """The Messages API's request: system messages moved to `system`, the rest as they are."""
    if isinstance(request.prompt, str):
        chat: list[dict[str, Any]] = [{"role": "user", "content": request.prompt}]
    else:
        chat = [dict(m) for m in request.prompt]
    system = [str(m.get("content", "")) for m in chat if m.get("role") == "system"]
    body: dict[str, Any] = {"model": model, **request.params,
                            "messages": [m for m in chat if m.get("role") != "system"]}
    if system:
        body["system"] = "\n\n".join(system)
    return body


class AnthropicBackend(HttpBackend):
    """Streams /v1/messages, timing each request."""

    OPTIONS: ClassVar[frozenset[str]] = HttpBackend.OPTIONS | {"anthropic_version", "count_tokens"}
    NAME = "anthropic"
    DEFAULT_BASE_URL = DEFAULT_URL
    HINTS = {**HttpBackend.HINTS, 400: "check the suite's params (the Messages API needs max_tokens)",
             404: "check 'base_url' (the host, e.g. https://api.anthropic.com) and the model name"}
    check_options = staticmethod(check_options)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.headers["anthropic-version"] = str(self.options.get("anthropic_version", VERSION))
        self.shown_url = messages_url(self.shown_url)

    def key_headers(self, key: str) -> dict[str, str]:
        return {"x-api-key": key}

    def url(self, request: Request) -> str:
        return messages_url(self.base_url)

    def body(self, request: Request) -> dict[str, Any]:
        if "max_tokens" not in request.params:
            raise BackendError(f"prompt '{request.id}': the Messages API needs max_tokens; add it to the suite's "
                               "params, e.g. params: {max_tokens: 512}.")
        return {**messages_body(self.model, request), "stream": True}

    def reader(self) -> Reader:
        return MessagesReader(self.shown_url)

    def count_input(self, request: Request) -> int:
        """Input tokens by Anthropic's free /v1/messages/count_tokens (count_tokens: endpoint)."""
        body = messages_body(self.model, request)
        keep: dict[str, Any] = {k: body[k] for k in ("model", "messages", "system", "tools", "tool_choice", "thinking") if k in body}
        answer = self.post(messages_url(self.base_url, "/messages/count_tokens"), keep)
        count = answer.get("input_tokens")
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise BackendError(f"{self.shown_url}: count_tokens answered without input_tokens")
        return count


class MessagesReader(Reader):
    """A Messages answer: streamed events, or one Message body (content blocks and usage)."""

    def __init__(self, where: str) -> None:
        super().__init__(where)
        self.text: list[str] = []
        self.calls: dict[int, dict[str, Any]] = {}
        self.reports: list[Any] = []
        self.served: str | None = None

    def feed(self, event: Mapping[str, Any]) -> bool:
        kind = event.get("type")
        if kind == "message_start" and isinstance(event.get("message"), dict):
            message = event["message"]
            self.reports.append(message.get("usage"))
            self.served = message.get("model") if isinstance(message.get("model"), str) else self.served
            return False
        if kind == "content_block_start" and isinstance(event.get("content_block"), dict):
            block = event["content_block"]
            if block.get("type") == "tool_use":
                self.calls[_index(event)] = {"name": block.get("name"), "arguments": ""}
                return True
            if block.get("type") == "text" and block.get("text"):
                self.grew(str(block["text"]))
                self.text.append(str(block["text"]))
                return True
            return False
        if kind == "content_block_delta" and isinstance(event.get("delta"), dict):
            delta = event["delta"]
            if delta.get("type") == "text_delta" and isinstance(delta.get("text"), str):
                self.grew(delta["text"])
                self.text.append(delta["text"])
                return bool(delta["text"])
            if delta.get("type") == "input_json_delta" and isinstance(delta.get("partial_json"), str):
                self.grew(delta["partial_json"])
                self.calls.setdefault(_index(event), {"name": None, "arguments": ""})["arguments"] += \
                    delta["partial_json"]
                return True
            return False  # thinking deltas: billed as output, counted by the usage
        if kind == "message_delta":
            self.reports.append(event.get("usage"))
            return False
        if kind == "message_stop":
            self.complete = True
            return False
        if kind == "message" or (kind is None and "content" in event):  # a whole, non-streamed Message
            self.complete = True
            self.reports.append(event.get("usage"))
            self.served = event.get("model") if isinstance(event.get("model"), str) else self.served
            for i, block in enumerate(event.get("content") or ()):
                if not isinstance(block, dict):
                    continue
                if block.get("type") == "text" and isinstance(block.get("text"), str):
                    self.grew(block["text"])
                    self.text.append(block["text"])
                elif block.get("type") == "tool_use":
                    self.calls[i] = {"name": block.get("name"), "arguments": block.get("input", {})}
        return False

    def completion(self, ttft: float | None, e2e: float) -> Completion:
        visible = "".join(self.text)
        calls = [tool_call_text(c["name"], c["arguments"] or "{}") for _, c in sorted(self.calls.items())]
        usage = anthropic(*self.reports)
        return Completion(text="\n".join(([visible] if visible else []) + calls),
                          outputs=(visible, *calls) if calls else None, ttft_ms=ttft, e2e_ms=e2e, usage=usage,
                          usage_expected=True, token_source="usage" if usage is not None else "tokenizer",
                          served_by=model_name(self.served))


def _index(event: Mapping[str, Any]) -> int:
    return event["index"] if isinstance(event.get("index"), int) else -1
