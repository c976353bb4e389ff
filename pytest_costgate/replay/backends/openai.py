"""Any OpenAI-compatible endpoint (vLLM, TGI, llama.cpp, Ollama, OpenAI), streamed for TTFT."""
from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any, ClassVar
from urllib.parse import urljoin

import requests

from ...config.specs import ModelSpec
from ...net.httpguard import DEADLINES, guarded_session
from ...net.retry import retry_after
from ...net.sse import TruncatedStream, chunk_text, error_message, finished, stream_chunks
from ...safety.errors import BackendError
from ...safety.redact import redact, register, register_headers, shorten
from . import CONCURRENCY_OPTIONS, Completion, Request, check_concurrency
from .openai_options import check_options, seconds

RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
HINTS = {
    401: "check the API key in the environment variable named by 'api_key_env'",
    403: "the key lacks access to this model or endpoint",
    404: "check 'base_url' (usually ends in /v1), 'endpoint' and the model name",
    422: "the server rejected the request body; check the suite's 'params'",
}
MAX_LINE_BYTES = 4 << 20  # one SSE line; a token chunk is a few hundred bytes
MAX_BODY_BYTES = 32 << 20  # a non-streamed answer
MAX_USAGE = 100_000_000  # tokens in one request's usage beyond any model's context: not believed
_EOL = re.compile(rb"\r\n|\r|\n")


class _Retryable(Exception):
    def __init__(self, message: str, wait: float | None = None) -> None:
        super().__init__(message)
        self.wait = wait



class OpenAIBackend:
    """Streams /chat/completions or /completions with include_usage, timing each request.

    Retries are a small loop rather than urllib3's Retry because latency must be timed on the
    successful attempt alone and a stream that breaks half-way must be retried too. Redirects are
    never followed: a 3xx would re-send the request (and its headers) somewhere else.
    """

    OPTIONS: ClassVar[frozenset[str]] = frozenset({
        "base_url", "model", "api_key_env", "endpoint", "timeout_s", "connect_timeout_s",
        "deadline_s", "max_retries", "backoff_s", "max_backoff_s", "headers",
    }) | CONCURRENCY_OPTIONS
    check_options = staticmethod(check_options)  # checked when the config loads (openai_options.py)

    def __init__(self, spec: ModelSpec, sleep: Callable[[float], None] = time.sleep) -> None:
        opts = spec.options
        self.where = spec.where

        def fail(name: str, message: str) -> Exception:
            return BackendError(f"{spec.where}: {name}: {message}")

        self.check_options(opts, fail)
        self.endpoint = str(opts.get("endpoint", "chat"))
        path = "/chat/completions" if self.endpoint == "chat" else "/completions"
        self.url = opts["base_url"].rstrip("/") + path
        self.shown_url = redact(self.url)
        self.model = str(opts.get("model", spec.name))
        self.headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        self.headers.update({str(k): str(v) for k, v in (opts.get("headers") or {}).items()})  # checked above
        key_env = opts.get("api_key_env")
        if key_env is not None:
            key = os.environ.get(str(key_env))
            if not key:
                raise BackendError(f"{spec.where}: the environment variable {key_env} (api_key_env) is not "
                                   "set. Export it, e.g. from a CI secret.")
            register(key)
            if any(c.isspace() or not c.isprintable() for c in key):
                raise BackendError(f"{spec.where}: the API key in {key_env} contains whitespace or a line break "
                                   "(a copy-paste slip?). Store the key alone in the secret.")
            self.headers["Authorization"] = f"Bearer {key}"
        register_headers(self.headers)
        self.timeout = (seconds(opts, "connect_timeout_s", fail), seconds(opts, "timeout_s", fail))
        self.deadline = seconds(opts, "deadline_s", fail)
        self.max_retries = int(opts.get("max_retries", 3))
        self.backoff = seconds(opts, "backoff_s", fail)
        self.max_backoff = seconds(opts, "max_backoff_s", fail)
        self.concurrency, self.max_requests_per_s = check_concurrency(opts, fail)
        self.sleep = sleep
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._lock = threading.Lock()
        self._not_before = 0.0  # shared backoff: after a 429, no worker sends before this moment

    def fingerprint(self) -> dict[str, str]:
        return {"backend": "openai", "endpoint": self.shown_url, "model": self.model}

    def close(self) -> None:
        with self._lock:
            for session in self._sessions:
                session.close()
            self._sessions.clear()

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:  # one connection pool per thread: requests.Session isn't thread-safe
            session = self._local.session = guarded_session()
            with self._lock:
                self._sessions.append(session)
        return session

    def _drop_connections(self) -> None:
        """Forget this thread's kept-alive connections: after an odd answer, the next one may belong to it."""
        session = getattr(self._local, "session", None)
        if session is not None:
            session.close()
            self._local.session = None

    def complete(self, request: Request) -> Completion:
        """Replay one request, retrying 429/5xx/dropped streams; never raises for a failed request."""
        try:
            return self._complete(request)
        except BackendError as exc:
            return Completion(error=redact(str(exc)))
        except Exception as exc:  # noqa: BLE001 - anything else inside requests/urllib3 ends this request only
            return Completion(error=shorten(f"{self.shown_url}: unexpected {type(exc).__name__}: {exc}", 400))

    def _complete(self, request: Request) -> Completion:
        body = self._body(request)
        last = ""
        for attempt in range(self.max_retries + 1):
            self._wait_turn()
            try:
                return self._attempt(body)
            except _Retryable as exc:
                last = str(exc)
                if attempt == self.max_retries:
                    break
                wait = exc.wait if exc.wait is not None else self.backoff * 2 ** attempt
                wait = min(max(wait, 0.0), self.max_backoff)
                if exc.wait is not None:  # the server asked everyone to wait: hold back the other workers too
                    with self._lock:
                        self._not_before = max(self._not_before, time.monotonic() + wait)
                self.sleep(wait)
        tries = self.max_retries + 1
        return Completion(error=redact(f"{last} (gave up after {tries} attempt{'s' * (tries > 1)})"))

    def _wait_turn(self) -> None:
        with self._lock:
            wait = self._not_before - time.monotonic()
        if wait > 0:
            self.sleep(wait)

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
        with DEADLINES.limit(self.deadline) as guard:
            try:
                return self._exchange(body)
            except (_Retryable, BackendError, requests.RequestException):
                if guard.fired:  # the watchdog cut the connection: the deadline, not the server, ended it
                    self._drop_connections()
                    raise BackendError(f"{self.shown_url}: response exceeded deadline_s={self.deadline:g}s") from None
                raise

    def _exchange(self, body: dict[str, Any]) -> Completion:
        start = time.perf_counter()
        try:
            response = self._session().post(self.url, data=json.dumps(body), headers=self.headers,
                                            timeout=self.timeout, stream=True, allow_redirects=False)
        except requests.exceptions.ConnectionError as exc:
            self._drop_connections()
            raise _Retryable(f"cannot connect to {self.shown_url} ({_reason(exc)}); is the server running "
                             "and is 'base_url' right?") from None
        except requests.exceptions.Timeout:
            self._drop_connections()
            raise _Retryable(f"{self.shown_url} did not answer within {self.timeout[1]:g}s (timeout_s)") from None
        with response:
            if response.status_code < 200:  # http.client takes a 102/103 as the answer; the real one would
                self._drop_connections()     # then be read as the NEXT request's answer
                raise BackendError(f"{self.shown_url} answered with an interim HTTP {response.status_code} this "
                                   "client can't follow; serve the API without 1xx responses (e.g. no Early Hints).")
            if 300 <= response.status_code < 400:
                location = redact(urljoin(self.url, response.headers.get("Location", "")))
                raise BackendError(f"{self.shown_url} answered HTTP {response.status_code}, a redirect to "
                                   f"{location[:200]}; redirects are not followed (they would re-send the request "
                                   "and its headers elsewhere). Point 'base_url' at the final address.")
            if response.status_code >= 400:
                raise self._http_error(response)
            if "application/json" in response.headers.get("Content-Type", ""):
                return self._unstreamed(response, start)
            return self._stream(response, start)

    def _lines(self, response: requests.Response, start: float) -> Iterator[str]:
        """The body's lines as they arrive, each bounded in size; the whole request bounded by deadline_s."""
        pending = bytearray()
        for chunk in response.iter_content(chunk_size=1024):
            if time.perf_counter() - start > self.deadline:
                raise BackendError(f"{self.shown_url}: response exceeded deadline_s={self.deadline:g}s")
            if b"\n" not in chunk and b"\r" not in chunk:
                pending += chunk
            else:
                *lines, rest = _EOL.split(bytes(pending) + chunk)
                pending = bytearray(rest)
                for line in lines:
                    yield line.decode("utf-8", errors="replace")
            if len(pending) > MAX_LINE_BYTES:
                raise BackendError(f"{self.shown_url}: a stream line is over {MAX_LINE_BYTES >> 20} MiB; not an "
                                   "OpenAI-style event stream")
        if pending:
            yield pending.decode("utf-8", errors="replace")

    def _stream(self, response: requests.Response, start: float) -> Completion:
        text: list[str] = []
        ttft = None
        usage: dict[str, Any] | None = None
        served: str | None = None
        done = False
        try:
            for chunk in stream_chunks(self._lines(response, start)):
                done = done or finished(chunk)
                piece = chunk_text(chunk)
                if piece:
                    if ttft is None:
                        ttft = (time.perf_counter() - start) * 1000
                    text.append(piece)
                if isinstance(chunk.get("usage"), dict):
                    usage = chunk["usage"]
                if isinstance(chunk.get("model"), str):
                    served = chunk["model"]
        except TruncatedStream:
            if not done:
                self._drop_connections()
                raise _Retryable(f"{self.shown_url}: the stream ended before the answer was complete") from None
        except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError) as exc:
            self._drop_connections()
            raise _Retryable(f"{self.shown_url}: the stream broke off ({_reason(exc)})") from None
        except requests.exceptions.Timeout:
            self._drop_connections()
            raise _Retryable(f"{self.shown_url}: the stream stalled for more than {self.timeout[1]:g}s "
                             "(timeout_s)") from None
        e2e = (time.perf_counter() - start) * 1000
        return replace(completion("".join(text), usage, ttft, e2e), served_by=_model_name(served))

    def _read_body(self, response: requests.Response, start: float) -> bytes:
        body = b""
        for chunk in response.iter_content(chunk_size=65536):
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                raise BackendError(f"{self.shown_url}: the response is over {MAX_BODY_BYTES >> 20} MiB")
            if time.perf_counter() - start > self.deadline:
                raise BackendError(f"{self.shown_url}: response exceeded deadline_s={self.deadline:g}s")
        return body

    def _unstreamed(self, response: requests.Response, start: float) -> Completion:
        raw = self._read_body(response, start)
        try:
            payload = json.loads(raw)
        except ValueError:
            raise BackendError(f"{self.shown_url}: the response is not JSON: "
                               f"{shorten(raw.decode('utf-8', 'replace'), 120)!r}") from None
        e2e = (time.perf_counter() - start) * 1000
        if not isinstance(payload, dict):
            raise BackendError(f"{self.shown_url}: unexpected response: {shorten(payload, 120)}")
        if payload.get("error"):
            raise BackendError(f"{self.shown_url}: server error: {shorten(error_message(payload), 300)}")
        usage = payload.get("usage") if isinstance(payload.get("usage"), dict) else None
        return replace(completion(chunk_text(payload), usage, e2e, e2e), served_by=_model_name(payload.get("model")))

    def _http_error(self, response: requests.Response) -> Exception:
        try:
            raw = self._read_body(response, time.perf_counter())
            detail = error_message(json.loads(raw))
        except BackendError:
            detail = "(an oversized error body)"
        except ValueError:
            detail = raw.decode("utf-8", "replace").strip() or str(response.reason)
        message = f"{self.shown_url} answered HTTP {response.status_code}: {shorten(detail, 300)}"
        if response.status_code in RETRY_STATUS:
            return _Retryable(message, retry_after(response.headers.get("Retry-After")))
        hint = HINTS.get(response.status_code)
        return BackendError(f"{message}" + (f" ({hint})" if hint else ""))


def completion(text: str, usage: dict[str, Any] | None, ttft: float | None, e2e: float) -> Completion:
    """A Completion from server usage, which is believed only when its counts are sane."""
    if usage is None:
        return Completion(text=text, ttft_ms=ttft, e2e_ms=e2e, token_source="tokenizer")
    prompt, output = _count(usage.get("prompt_tokens")), _count(usage.get("completion_tokens"))
    if prompt is None or output is None:
        shown = shorten(json.dumps({k: usage.get(k) for k in ("prompt_tokens", "completion_tokens")}), 120)
        return Completion(text=text, ttft_ms=ttft, e2e_ms=e2e, token_source="tokenizer",
                          note=f"server usage ignored ({shown}: not whole numbers from 0 to {MAX_USAGE:,}); "
                               "tokens counted with the tokenizer")
    details = usage.get("prompt_tokens_details") or {}
    cached = _count(details.get("cached_tokens")) if isinstance(details, dict) else None
    return Completion(text=text, ttft_ms=ttft, e2e_ms=e2e, token_source="usage", input_tokens=prompt,
                      output_tokens=output, cached_tokens=None if cached is None else min(cached, prompt))


def _model_name(value: Any) -> str | None:
    """The response's 'model' (which model answered, e.g. behind a router): server text, kept short."""
    return value[:10_000] if isinstance(value, str) and value.strip() else None  # redacted, then cut, by measure


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_USAGE else None


def _reason(exc: Exception) -> str:
    text = str(exc)
    for marker in ("Connection refused", "Name or service not known", "Connection reset",
                   "Remote end closed", "IncompleteRead", "Connection broken", "timed out"):
        if marker in text:
            return marker.lower()
    return type(exc).__name__
