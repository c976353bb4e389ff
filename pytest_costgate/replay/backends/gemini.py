"""Google's Gemini API (`backend: gemini`): models/{model}:streamGenerateContent?alt=sse with the key in
`x-goog-api-key`, messages as `contents` (assistant turns as role 'model', system messages as
`systemInstruction`), the usage in each chunk's `usageMetadata` (the last one is the whole answer's)."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar
from urllib.parse import quote

from ...safety.errors import BackendError
from . import Completion, Request
from .http import HttpBackend, Reader, model_name, tool_call_text
from .openai_options import check_http
from .usage import gemini

DEFAULT_URL = "https://generativelanguage.googleapis.com/v1beta"
PARAMS = frozenset({"generationConfig", "safetySettings", "tools", "toolConfig", "cachedContent", "labels"})


def check_options(options: Mapping[str, Any], fail: Callable[[str, str], Exception]) -> None:
    check_http(options, fail, DEFAULT_URL, count_tokens=True)


def contents_body(request: Request) -> dict[str, Any]:
    """generateContent's request: each message as content parts; params as the API names them."""
    unknown = sorted(set(request.params) - PARAMS)
    if unknown:
        raise BackendError(f"prompt '{request.id}': the Gemini API takes params {', '.join(sorted(PARAMS))}; "
                           f"{', '.join(unknown)} is not among them (max_tokens is generationConfig.maxOutputTokens).")
    chat = [{"role": "user", "content": request.prompt}] if isinstance(request.prompt, str) else list(request.prompt)
    system = [str(m.get("content", "")) for m in chat if m.get("role") == "system"]
    body: dict[str, Any] = {"contents": [
        {"role": "model" if m.get("role") == "assistant" else "user", "parts": [{"text": str(m.get("content", ""))}]}
        for m in chat if m.get("role") != "system"], **request.params}
    if system:
        body["systemInstruction"] = {"parts": [{"text": "\n\n".join(system)}]}
    return body


class GeminiBackend(HttpBackend):
    """Streams models/{model}:streamGenerateContent, timing each request."""

    OPTIONS: ClassVar[frozenset[str]] = HttpBackend.OPTIONS | {"count_tokens"}
    NAME = "gemini"
    DEFAULT_BASE_URL = DEFAULT_URL
    check_options = staticmethod(check_options)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.shown_url = f"{self.shown_url}/models/{quote(self.model, safe='')}"

    def key_headers(self, key: str) -> dict[str, str]:
        return {"x-goog-api-key": key}

    def url(self, request: Request) -> str:
        return f"{self.base_url}/models/{quote(self.model, safe='')}:streamGenerateContent?alt=sse"

    def body(self, request: Request) -> dict[str, Any]:
        return contents_body(request)

    def reader(self) -> Reader:
        return ContentsReader(self.shown_url)

    def count_input(self, request: Request) -> int:
        """Input tokens by models/{model}:countTokens (count_tokens: endpoint)."""
        body = {"generateContentRequest": {"model": f"models/{self.model}", **contents_body(request)}}
        answer = self.post(f"{self.base_url}/models/{quote(self.model, safe='')}:countTokens", body)
        count = answer.get("totalTokens")
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise BackendError(f"{self.shown_url}: countTokens answered without totalTokens")
        return count


class ContentsReader(Reader):
    """GenerateContentResponse chunks (or one): candidates' parts (text, functionCall; thought parts are billed
    as output and counted by the usage), usageMetadata, modelVersion."""

    def __init__(self, where: str) -> None:
        super().__init__(where)
        self.text: list[str] = []
        self.calls: list[str] = []
        self.metadata: Any = None
        self.served: str | None = None

    def feed(self, event: Mapping[str, Any]) -> bool:
        visible = False
        for candidate in event.get("candidates") or ():
            if not isinstance(candidate, dict):
                continue
            if candidate.get("finishReason"):
                self.complete = True
            content: dict[str, Any] = candidate["content"] if isinstance(candidate.get("content"), dict) else {}
            for part in content.get("parts") or ():
                if not isinstance(part, dict) or part.get("thought"):
                    continue
                if isinstance(part.get("text"), str) and part["text"]:
                    self.grew(part["text"])
                    self.text.append(part["text"])
                    visible = True
                if isinstance(part.get("functionCall"), dict):
                    call = part["functionCall"]
                    self.calls.append(tool_call_text(call.get("name"), call.get("args", {})))
                    visible = True
        if isinstance(event.get("usageMetadata"), dict):
            self.metadata = event["usageMetadata"]
        if isinstance(event.get("modelVersion"), str):
            self.served = event["modelVersion"]
        return visible

    def completion(self, ttft: float | None, e2e: float) -> Completion:
        visible = "".join(self.text)
        usage = gemini(self.metadata)
        return Completion(text="\n".join(([visible] if visible else []) + self.calls),
                          outputs=(visible, *self.calls) if self.calls else None, ttft_ms=ttft, e2e_ms=e2e,
                          usage=usage, usage_expected=True,
                          token_source="usage" if usage is not None else "tokenizer",
                          served_by=model_name(self.served))
