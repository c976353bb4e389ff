"""Any OpenAI-compatible endpoint (vLLM, TGI, llama.cpp, Ollama, OpenAI): Chat Completions (`endpoint: chat`),
legacy Completions (`completions`) and the Responses API (`responses`), streamed for TTFT with the usage the
server reports (`stream_options.include_usage`; the Responses API's `response.completed`)."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from ...safety.errors import BackendError
from ...safety.redact import redact
from . import Completion, Request
from .http import HttpBackend, Reader, joined, model_name, tool_call_text
from .openai_options import check_options
from .usage import openai_chat, openai_responses

ENDPOINTS = {"chat": "/chat/completions", "completions": "/completions", "responses": "/responses"}


class OpenAIBackend(HttpBackend):
    """Streams /chat/completions, /completions or /responses, timing each request."""

    OPTIONS: ClassVar[frozenset[str]] = HttpBackend.OPTIONS | {"endpoint", "count_tokens"}
    NAME = "openai"
    check_options = staticmethod(check_options)  # checked when the config loads (openai_options.py)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.endpoint = str(self.options.get("endpoint", "chat"))
        self.shown_url = redact(self.base_url + ENDPOINTS[self.endpoint])

    def url(self, request: Request) -> str:
        return self.base_url + ENDPOINTS[self.endpoint]

    def body(self, request: Request) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, **request.params}
        messages = [{"role": "user", "content": request.prompt}] if isinstance(request.prompt, str) \
            else [dict(m) for m in request.prompt]
        if self.endpoint == "chat":
            body["messages"] = messages
            body["stream_options"] = {"include_usage": True}
        elif self.endpoint == "responses":
            body["input"] = request.prompt if isinstance(request.prompt, str) else messages
        else:
            if not isinstance(request.prompt, str):
                raise BackendError(f"prompt '{request.id}' is a chat but the model's endpoint is "
                                   "'completions'; use endpoint: chat or a text template.")
            body["prompt"] = request.prompt
            body["stream_options"] = {"include_usage": True}
        body["stream"] = True
        return body

    def count_input(self, request: Request) -> int:
        """Input tokens by the Responses API's free /responses/input_tokens (count_tokens: endpoint)."""
        body = self.body(request)
        keep = {k: v for k, v in body.items() if k not in ("stream", "stream_options", "max_tokens",
                                                             "max_output_tokens", "temperature", "top_p")}
        if "messages" in keep:
            keep["input"] = keep.pop("messages")
        answer = self.post(self.base_url + "/responses/input_tokens", keep)
        count = answer.get("input_tokens")
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise BackendError(f"{self.shown_url}: /responses/input_tokens answered without input_tokens")
        return count

    def reader(self) -> Reader:
        return ResponsesReader(self.shown_url) if self.endpoint == "responses" else ChatReader(self.shown_url)

    def done_marker(self) -> str | None:
        return None if self.endpoint == "responses" else "[DONE]"


class ChatReader(Reader):
    """Chat Completions and Completions: streamed chunks (`choices[].delta`, tool calls in pieces, the usage in
    the last chunk) or one body (`choices[].message`). Choices (n > 1) are kept apart by their index."""

    def __init__(self, where: str) -> None:
        super().__init__(where)
        self.texts: dict[int, list[str]] = {}
        self.calls: dict[int, dict[int, dict[str, Any]]] = {}  # choice -> tool call index -> {name, arguments}
        self.usage: Any = None
        self.served: str | None = None

    def feed(self, event: Mapping[str, Any]) -> bool:
        visible = False
        choices = event.get("choices")
        for n, choice in enumerate(choices if isinstance(choices, list) else ()):
            if not isinstance(choice, dict):
                continue
            index: int = choice["index"] if isinstance(choice.get("index"), int) else n
            if choice.get("finish_reason"):
                self.complete = True
            part = choice.get("delta") if isinstance(choice.get("delta"), dict) else choice.get("message")
            if isinstance(choice.get("message"), dict):
                self.complete = True  # a whole (non-streamed) answer
            text = part.get("content") if isinstance(part, dict) else choice.get("text")
            if isinstance(text, str) and text:
                self.grew(text)
                self.texts.setdefault(index, []).append(text)
                visible = True
            for call in (part.get("tool_calls") or ()) if isinstance(part, dict) else ():
                visible = self._tool_call(index, call) or visible
        if isinstance(event.get("usage"), dict):
            self.usage = event["usage"]
        if isinstance(event.get("model"), str):
            self.served = event["model"]
        return visible

    def _tool_call(self, choice: int, call: Any) -> bool:
        if not isinstance(call, dict):
            return False
        at: int = call["index"] if isinstance(call.get("index"), int) else len(self.calls.get(choice, {}))
        entry = self.calls.setdefault(choice, {}).setdefault(at, {"name": None, "arguments": ""})
        function: dict[str, Any] = call["function"] if isinstance(call.get("function"), dict) else {}
        if isinstance(function.get("name"), str):
            entry["name"] = function["name"]
        arguments = function.get("arguments")
        if isinstance(arguments, str):
            self.grew(arguments)
            entry["arguments"] += arguments
        return True

    def completion(self, ttft: float | None, e2e: float) -> Completion:
        indexes = sorted(set(self.texts) | set(self.calls)) or [0]
        outputs = []
        for i in indexes:
            lines = ["".join(self.texts.get(i, []))] if self.texts.get(i) else []
            lines += [tool_call_text(c["name"], c["arguments"]) for _, c in sorted(self.calls.get(i, {}).items())]
            outputs.append("\n".join(lines))
        return Completion(text=joined(outputs), outputs=tuple(outputs) if len(outputs) > 1 or self.calls else None,
                          ttft_ms=ttft, e2e_ms=e2e, usage=openai_chat(self.usage), usage_expected=True,
                          token_source="usage" if self.usage is not None else "tokenizer",
                          served_by=model_name(self.served))


class ResponsesReader(Reader):
    """The Responses API: streamed events (`response.output_text.delta`, `response.output_item.done` for tool
    calls, `response.completed` carrying the response and its usage) or one Response body."""

    def __init__(self, where: str) -> None:
        super().__init__(where)
        self.text: list[str] = []
        self.calls: list[str] = []
        self.usage: Any = None
        self.served: str | None = None
        self.streamed = False

    def feed(self, event: Mapping[str, Any]) -> bool:
        kind = event.get("type")
        if kind == "response.output_text.delta" and isinstance(event.get("delta"), str):
            self.streamed = True
            self.grew(event["delta"])
            self.text.append(event["delta"])
            return bool(event["delta"])
        if kind == "response.output_item.done" and isinstance(event.get("item"), dict):
            item = event["item"]
            if item.get("type") == "function_call":
                self.grew(str(item.get("arguments", "")))
                self.calls.append(tool_call_text(item.get("name"), item.get("arguments", "")))
                return True
            return False
        if kind in ("response.completed", "response.incomplete") and isinstance(event.get("response"), dict):
            self._response(event["response"], from_stream=True)
            return False
        if kind is None or kind == "response" or event.get("object") == "response":  # a whole Response body
            self._response(event, from_stream=False)
        return False

    def _response(self, response: Mapping[str, Any], from_stream: bool) -> None:
        self.complete = True
        self.usage = response.get("usage")
        self.served = response.get("model") if isinstance(response.get("model"), str) else self.served
        if from_stream and (self.text or self.calls):
            return  # the deltas said it already
        for item in response.get("output") or ():
            if not isinstance(item, dict):
                continue
            if item.get("type") == "message":
                for part in item.get("content") or ():
                    if isinstance(part, dict) and part.get("type") == "output_text" and isinstance(part.get("text"), str):
                        self.grew(part["text"])
                        self.text.append(part["text"])
            elif item.get("type") == "function_call":
                self.calls.append(tool_call_text(item.get("name"), item.get("arguments", "")))

    def completion(self, ttft: float | None, e2e: float) -> Completion:
        visible = "".join(self.text)
        text = "\n".join(([visible] if visible else []) + self.calls)
        return Completion(text=text, outputs=((visible, *self.calls) if self.calls else None), ttft_ms=ttft,
                          e2e_ms=e2e, usage=openai_responses(self.usage), usage_expected=True,
                          token_source="usage" if self.usage is not None else "tokenizer",
                          served_by=model_name(self.served))
