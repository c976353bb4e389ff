"""Any OpenAI-compatible endpoint (vLLM, TGI, llama.cpp, Ollama, OpenAI), streamed for TTFT."""
from __future__ import annotations

import json
import os
import time
from typing import Any, Callable, ClassVar

import requests

from ..config import ModelSpec
from ..errors import BackendError
from ..retry import retry_after
from . import Completion, Request
from .sse import TruncatedStream, chunk_text, error_message, finished, stream_chunks

RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
HINTS = {
    401: "check the API key in the environment variable named by 'api_key_env'",
    403: "the key lacks access to this model or endpoint",
    404: "check 'base_url' (usually ends in /v1), 'endpoint' and the model name",
    422: "the server rejected the request body; check the suite's 'params'",
}


class _Retryable(Exception):
    def __init__(self, message: str, wait: float | None = None) -> None:
        super().__init__(message)
        self.wait = wait


class OpenAIBackend:
    """Streams /chat/completions or /completions with include_usage, timing each request.

    Retries are a small loop rather than urllib3's Retry because latency must be timed on the
    successful attempt alone and a stream that breaks half-way must be retried too.
    """

    OPTIONS: ClassVar[frozenset[str]] = frozenset({
        "base_url", "model", "api_key_env", "endpoint", "timeout_s", "connect_timeout_s",
        "deadline_s", "max_retries", "backoff_s", "max_backoff_s", "headers",
    })

    def __init__(self, spec: ModelSpec, sleep: Callable[[float], None] = time.sleep) -> None:
        opts = spec.options
        self.where = spec.where
        if not isinstance(opts.get("base_url"), str) or not opts["base_url"].startswith(("http://", "https://")):
            raise BackendError(f"{spec.where}: 'base_url' must be an http(s) URL such as "
                               "http://127.0.0.1:8000/v1.")
        self.endpoint = str(opts.get("endpoint", "chat"))
        if self.endpoint not in ("chat", "completions"):
            raise BackendError(f"{spec.where}: 'endpoint' must be 'chat' or 'completions', got {self.endpoint!r}.")
        path = "/chat/completions" if self.endpoint == "chat" else "/completions"
        self.url = opts["base_url"].rstrip("/") + path
        self.model = str(opts.get("model", spec.name))
        self.headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        extra = opts.get("headers", {})
        if not isinstance(extra, dict):
            raise BackendError(f"{spec.where}: 'headers' must be a mapping of header names to values.")
        self.headers.update({str(k): str(v) for k, v in extra.items()})
        key_env = opts.get("api_key_env")
        if key_env is not None:
            key = os.environ.get(str(key_env))
            if not key:
                raise BackendError(f"{spec.where}: the environment variable {key_env} (api_key_env) is not "
                                   "set. Export it, e.g. from a CI secret.")
            self.headers["Authorization"] = f"Bearer {key}"
        try:
            self.timeout = (float(opts.get("connect_timeout_s", 10)), float(opts.get("timeout_s", 60)))
            self.deadline = float(opts.get("deadline_s", 300))
            self.max_retries = int(opts.get("max_retries", 3))
            self.backoff = float(opts.get("backoff_s", 1.0))
            self.max_backoff = float(opts.get("max_backoff_s", 30.0))
        except (TypeError, ValueError) as exc:
            raise BackendError(f"{spec.where}: a timeout/retry option is not a number: {exc}") from None
        self.sleep = sleep
        self.session = requests.Session()

    def fingerprint(self) -> dict[str, str]:
        return {"backend": "openai", "endpoint": self.url, "model": self.model}

    def close(self) -> None:
        self.session.close()

    def complete(self, request: Request) -> Completion:
        """Replay one request, retrying 429/5xx/dropped streams; never raises for a failed request."""
        body = self._body(request)
        last = ""
        for attempt in range(self.max_retries + 1):
            try:
                return self._attempt(body)
            except _Retryable as exc:
                last = str(exc)
                if attempt == self.max_retries:
                    break
                wait = exc.wait if exc.wait is not None else self.backoff * 2 ** attempt
                self.sleep(min(max(wait, 0.0), self.max_backoff))
            except BackendError as exc:
                return Completion(error=str(exc))
        tries = self.max_retries + 1
        return Completion(error=f"{last} (gave up after {tries} attempt{'s' * (tries > 1)})")

    def _body(self, request: Request) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, **request.params}
        if self.endpoint == "chat":
            if isinstance(request.prompt, str):
                body["messages"] = [{"role": "user", "content": request.prompt}]
            else:
                body["messages"] = [dict(m) for m in request.prompt]
        else:
            if not isinstance(request.prompt, str):
                raise BackendError(f"prompt '{request.id}' is a chat but the model's endpoint is "
                                   "'completions'; use endpoint: chat or a text template.")
            body["prompt"] = request.prompt
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
        return body

    def _attempt(self, body: dict[str, Any]) -> Completion:
        start = time.perf_counter()
        try:
            response = self.session.post(self.url, data=json.dumps(body), headers=self.headers,
                                         timeout=self.timeout, stream=True)
        except requests.exceptions.ConnectionError as exc:
            raise _Retryable(f"cannot connect to {self.url} ({_reason(exc)}); is the server running "
                             "and is 'base_url' right?") from None
        except requests.exceptions.Timeout:
            raise _Retryable(f"{self.url} did not answer within {self.timeout[1]:g}s (timeout_s)") from None
        with response:
            if response.status_code >= 400:
                raise self._http_error(response)
            if "application/json" in response.headers.get("Content-Type", ""):
                return self._unstreamed(response, start)
            return self._stream(response, start)

    def _stream(self, response: requests.Response, start: float) -> Completion:
        text: list[str] = []
        ttft = None
        usage: dict[str, Any] | None = None
        done = False
        try:
            for chunk in stream_chunks(response.iter_lines(decode_unicode=True)):
                done = done or finished(chunk)
                piece = chunk_text(chunk)
                if piece:
                    if ttft is None:
                        ttft = (time.perf_counter() - start) * 1000
                    text.append(piece)
                if isinstance(chunk.get("usage"), dict):
                    usage = chunk["usage"]
                if time.perf_counter() - start > self.deadline:
                    raise BackendError(f"{self.url}: response exceeded deadline_s={self.deadline:g}s")
        except TruncatedStream:
            if not done:
                raise _Retryable(f"{self.url}: the stream ended before the answer was complete") from None
        except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError) as exc:
            raise _Retryable(f"{self.url}: the stream broke off ({_reason(exc)})") from None
        except requests.exceptions.Timeout:
            raise _Retryable(f"{self.url}: the stream stalled for more than {self.timeout[1]:g}s (timeout_s)") from None
        e2e = (time.perf_counter() - start) * 1000
        return _completion("".join(text), usage, ttft, e2e)

    def _unstreamed(self, response: requests.Response, start: float) -> Completion:
        try:
            payload = response.json()
        except ValueError:
            raise BackendError(f"{self.url}: the response is not JSON: {response.text[:120]!r}") from None
        e2e = (time.perf_counter() - start) * 1000
        if not isinstance(payload, dict):
            raise BackendError(f"{self.url}: unexpected response: {str(payload)[:120]}")
        if payload.get("error"):
            raise BackendError(f"{self.url}: server error: {error_message(payload)}")
        usage = payload.get("usage") if isinstance(payload.get("usage"), dict) else None
        return _completion(chunk_text(payload), usage, e2e, e2e)

    def _http_error(self, response: requests.Response) -> Exception:
        try:
            detail = error_message(response.json())
        except ValueError:
            detail = response.text.strip()[:200] or response.reason
        message = f"{self.url} answered HTTP {response.status_code}: {detail}"
        if response.status_code in RETRY_STATUS:
            return _Retryable(message, retry_after(response.headers.get("Retry-After")))
        hint = HINTS.get(response.status_code)
        return BackendError(f"{message}" + (f" ({hint})" if hint else ""))


def _completion(text: str, usage: dict[str, Any] | None, ttft: float | None, e2e: float) -> Completion:
    if usage is None:
        return Completion(text=text, ttft_ms=ttft, e2e_ms=e2e, token_source="tokenizer")
    details = usage.get("prompt_tokens_details") or {}
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    return Completion(
        text=text, ttft_ms=ttft, e2e_ms=e2e, token_source="usage",
        input_tokens=_int(usage.get("prompt_tokens")), output_tokens=_int(usage.get("completion_tokens")),
        cached_tokens=_int(cached),
    )


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _reason(exc: Exception) -> str:
    text = str(exc)
    for marker in ("Connection refused", "Name or service not known", "Connection reset",
                   "Remote end closed", "IncompleteRead", "Connection broken", "timed out"):
        if marker in text:
            return marker.lower()
    return type(exc).__name__
