"""What every HTTP API backend shares: options, the key in its header, one session per thread, retries of
429/5xx and broken streams with a backoff the workers share, a hard deadline per request, no redirects, and
bounded reads. A provider module (openai.py, anthropic.py, gemini.py) says only where a request goes, what its
body is, and how its answer (a JSON body, or a stream of JSON events) reads: a `Reader` per API.

Retries are a small loop rather than urllib3's Retry because latency must be timed on the successful attempt
alone and a stream that breaks half-way must be retried too. Redirects are never followed: a 3xx would re-send
the request (and its headers, the key among them) somewhere else.
"""
from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import fields, replace
from typing import Any, ClassVar
from urllib.parse import urljoin

import requests

from ...config.specs import ModelSpec
from ...net.httpguard import DEADLINES, guarded_session
from ...net.retry import retry_after
from ...net.sse import TruncatedStream, error_message, json_events
from ...safety.errors import BackendError
from ...safety.redact import redact, register, register_headers, server_text, shorten
from . import CONCURRENCY_OPTIONS, NO_USAGE, Completion, Request, check_concurrency
from .openai_options import seconds

RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504, 529})  # 529: Anthropic's "overloaded"
MAX_LINE_BYTES = 4 << 20  # one SSE line; a token chunk is a few hundred bytes
MAX_BODY_BYTES = 32 << 20  # a non-streamed answer
MAX_USAGE = 100_000_000  # tokens in one request's usage beyond any model's context: not believed
MAX_ANSWER_CHARS = 10_000_000  # the text of one answer, streamed or not: a server that never stops is refused
_EOL = re.compile(rb"\r\n|\r|\n")
OPTIONS = frozenset({"base_url", "model", "api_key_env", "timeout_s", "connect_timeout_s", "deadline_s",
                     "max_retries", "backoff_s", "max_backoff_s", "headers"}) | CONCURRENCY_OPTIONS


class Retryable(Exception):
    def __init__(self, message: str, wait: float | None = None) -> None:
        super().__init__(message)
        self.wait = wait


class Reader:
    """An answer being read: `feed` each JSON event of a stream (or the whole body once); `visible` says whether
    that event brought output (its arrival is the time to first token); `complete` whether the answer is whole."""

    complete = False

    def __init__(self, where: str) -> None:
        self.where = where
        self.size = 0

    def feed(self, event: Mapping[str, Any]) -> bool:
        raise NotImplementedError

    def completion(self, ttft: float | None, e2e: float) -> Completion:
        raise NotImplementedError

    def grew(self, text: str) -> None:
        """Count an answer's text as it arrives: one that never ends is cut off, not held in memory."""
        self.size += len(text)
        if self.size > MAX_ANSWER_CHARS:
            raise BackendError(f"{self.where}: the answer is over {MAX_ANSWER_CHARS:,} characters; a server that "
                               "does not stop (set max_tokens in the suite's params)")


class HttpBackend:
    """An API model over HTTP; subclasses give the request's URL, headers and body and the answer's Reader."""

    OPTIONS: ClassVar[frozenset[str]] = OPTIONS
    HINTS: ClassVar[Mapping[int, str]] = {
        401: "check the API key in the environment variable named by 'api_key_env'",
        403: "the key lacks access to this model or endpoint",
        404: "check 'base_url', 'endpoint' and the model name",
        422: "the server rejected the request body; check the suite's 'params'",
    }
    DEFAULT_BASE_URL: ClassVar[str | None] = None
    NAME: ClassVar[str] = "http"

    def __init__(self, spec: ModelSpec, sleep: Callable[[float], None] = time.sleep) -> None:
        opts = self.options = spec.options
        self.where = spec.where

        def fail(name: str, message: str) -> Exception:
            return BackendError(f"{spec.where}: {name}: {message}")

        self.check_options(opts, fail)
        self.base_url = str(opts.get("base_url") or self.DEFAULT_BASE_URL).rstrip("/")
        self.shown_url = redact(self.base_url)
        self.model = str(opts.get("model", spec.name))
        self.headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        self.headers.update({str(k): str(v) for k, v in (opts.get("headers") or {}).items()})  # checked at load
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
            self.headers.update(self.key_headers(key))
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

    @staticmethod
    def check_options(options: Mapping[str, Any], fail: Callable[[str, str], Exception]) -> None:
        raise NotImplementedError

    # what a provider says -------------------------------------------------------------------------------------
    def key_headers(self, key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}

    def url(self, request: Request) -> str:
        raise NotImplementedError

    def body(self, request: Request) -> dict[str, Any]:
        raise NotImplementedError

    def reader(self) -> Reader:
        raise NotImplementedError

    def done_marker(self) -> str | None:
        """The data line that ends a stream (OpenAI's '[DONE]'), or None: the reader says when it is complete."""
        return None

    # the rest is shared ---------------------------------------------------------------------------------------
    def fingerprint(self) -> dict[str, str]:
        return {"backend": self.NAME, "endpoint": self.shown_url, "model": self.model}

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
        url, body = self.url(request), self.body(request)
        last = ""
        for attempt in range(self.max_retries + 1):
            self._wait_turn()
            try:
                return self._attempt(url, body)
            except Retryable as exc:
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

    def _attempt(self, url: str, body: dict[str, Any]) -> Completion:
        with DEADLINES.limit(self.deadline) as guard:
            try:
                return self._exchange(url, body)
            except (Retryable, BackendError, requests.RequestException):
                if guard.fired:  # the watchdog cut the connection: the deadline, not the server, ended it
                    self._drop_connections()
                    raise BackendError(f"{self.shown_url}: response exceeded deadline_s={self.deadline:g}s") from None
                raise

    def post(self, url: str, body: Mapping[str, Any]) -> Any:
        """POST JSON and read a JSON answer (a count-tokens call): retried, bounded, never redirected."""
        for attempt in range(self.max_retries + 1):
            try:
                with DEADLINES.limit(self.deadline):
                    response = self._session().post(url, data=json.dumps(body), headers={
                        **self.headers, "Accept": "application/json"}, timeout=self.timeout, allow_redirects=False)
                    with response:
                        self._check_status(response, url)
                        return self._json(self._read_body(response, time.perf_counter()))
            except Retryable as exc:
                if attempt == self.max_retries:
                    raise BackendError(str(exc)) from None
                self.sleep(min(exc.wait if exc.wait is not None else self.backoff * 2 ** attempt, self.max_backoff))
            except requests.RequestException as exc:
                self._drop_connections()
                if attempt == self.max_retries:
                    raise BackendError(f"cannot reach {self.shown_url} ({_reason(exc)})") from None
        raise BackendError(f"cannot reach {self.shown_url}")  # pragma: no cover - the loop returns or raises

    def _exchange(self, url: str, body: dict[str, Any]) -> Completion:
        start = time.perf_counter()
        try:
            response = self._session().post(url, data=json.dumps(body), headers=self.headers,
                                            timeout=self.timeout, stream=True, allow_redirects=False)
        except requests.exceptions.ConnectionError as exc:
            self._drop_connections()
            raise Retryable(f"cannot connect to {self.shown_url} ({_reason(exc)}); is the server running "
                            "and is 'base_url' right?") from None
        except requests.exceptions.Timeout:
            self._drop_connections()
            raise Retryable(f"{self.shown_url} did not answer within {self.timeout[1]:g}s (timeout_s)") from None
        with response:
            self._check_status(response, url)
            if "application/json" in response.headers.get("Content-Type", ""):
                return self._unstreamed(response, start)
            return self._stream(response, start)

    def _check_status(self, response: requests.Response, url: str) -> None:
        if response.status_code < 200:  # http.client takes a 102/103 as the answer; the real one would
            self._drop_connections()     # then be read as the NEXT request's answer
            raise BackendError(f"{self.shown_url} answered with an interim HTTP {response.status_code} this "
                               "client can't follow; serve the API without 1xx responses (e.g. no Early Hints).")
        if 300 <= response.status_code < 400:
            location = redact(urljoin(url, response.headers.get("Location", "")))
            raise BackendError(f"{self.shown_url} answered HTTP {response.status_code}, a redirect to "
                               f"{location[:200]}; redirects are not followed (they would re-send the request "
                               "and its headers elsewhere). Point 'base_url' at the final address.")
        if response.status_code >= 400:
            raise self._http_error(response)

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
                                   "event stream")
        if pending:
            yield pending.decode("utf-8", errors="replace")

    def _stream(self, response: requests.Response, start: float) -> Completion:
        reader = self.reader()
        ttft = None
        try:
            for event in json_events(self._lines(response, start), self.done_marker()):
                if reader.feed(event) and ttft is None:
                    ttft = (time.perf_counter() - start) * 1000
        except TruncatedStream:
            if not reader.complete:
                self._drop_connections()
                raise Retryable(f"{self.shown_url}: the stream ended before the answer was complete") from None
        except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError) as exc:
            self._drop_connections()
            raise Retryable(f"{self.shown_url}: the stream broke off ({_reason(exc)})") from None
        except requests.exceptions.Timeout:
            self._drop_connections()
            raise Retryable(f"{self.shown_url}: the stream stalled for more than {self.timeout[1]:g}s "
                            "(timeout_s)") from None
        if self.done_marker() is None and not reader.complete:
            self._drop_connections()
            raise Retryable(f"{self.shown_url}: the stream ended before the answer was complete")
        return believed(reader.completion(ttft, (time.perf_counter() - start) * 1000))

    def _read_body(self, response: requests.Response, start: float) -> bytes:
        body = b""
        for chunk in response.iter_content(chunk_size=65536):
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                raise BackendError(f"{self.shown_url}: the response is over {MAX_BODY_BYTES >> 20} MiB")
            if time.perf_counter() - start > self.deadline:
                raise BackendError(f"{self.shown_url}: response exceeded deadline_s={self.deadline:g}s")
        return body

    def _json(self, raw: bytes) -> dict[str, Any]:
        try:
            payload = json.loads(raw)
        except ValueError:
            raise BackendError(f"{self.shown_url}: the response is not JSON: "
                               f"{shorten(raw.decode('utf-8', 'replace'), 120)!r}") from None
        if not isinstance(payload, dict):
            raise BackendError(f"{self.shown_url}: unexpected response: {shorten(payload, 120)}")
        if payload.get("error") or payload.get("type") == "error":
            raise BackendError(f"{self.shown_url}: server error: {server_text(error_message(payload))}")
        return payload

    def _unstreamed(self, response: requests.Response, start: float) -> Completion:
        payload = self._json(self._read_body(response, start))
        e2e = (time.perf_counter() - start) * 1000
        reader = self.reader()
        reader.feed(payload)
        if not reader.complete:
            raise BackendError(f"{self.shown_url}: a JSON answer without a usable choice or content: "
                               f"{shorten(json.dumps(payload)[:400], 160)}")
        return believed(reader.completion(e2e, e2e))

    def _http_error(self, response: requests.Response) -> Exception:
        # only the error's message field, masked (a key echoed in any form is token-shaped); a body that is not
        # a JSON error gives the status alone
        try:
            raw = self._read_body(response, time.perf_counter())
            detail = server_text(error_message(json.loads(raw)))
        except BackendError:
            detail = "(an oversized error body)"
        except ValueError:
            detail = server_text(response.reason or "", 80)
        message = f"{self.shown_url} answered HTTP {response.status_code}: {detail}"
        if response.status_code in RETRY_STATUS:
            return Retryable(message, retry_after(response.headers.get("Retry-After")))
        hint = self.HINTS.get(response.status_code)
        return BackendError(f"{message}" + (f" ({hint})" if hint else ""))


def believed(done: Completion) -> Completion:
    """The answer with its server usage, when its counts are whole numbers in range that add up; else without it
    (the tokenizer counts), saying why. The usage's totals also fill the Completion's simple counts."""
    usage = done.usage
    if usage is None:
        return done if done.note is not None else replace(done, note=NO_USAGE)
    values = [getattr(usage, f.name) for f in fields(usage) if f.name != "details"] + list(usage.details.values())
    sane = all(v is None or (isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= MAX_USAGE) for v in values)
    problems = usage.problems() if sane else []
    if not sane or problems or usage.input_tokens is None or usage.output_tokens is None:
        shown = shorten(json.dumps({"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens},
                                   default=str), 120) if not problems else problems[0]
        why = f"not whole numbers from 0 to {MAX_USAGE:,}" if not sane else "parts exceed their total" if problems \
            else "a total is missing"
        return replace(done, usage=None, token_source="tokenizer",
                       note=f"server usage ignored ({shown}: {why}); tokens counted with the tokenizer")
    return replace(done, input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
                   cached_tokens=usage.cache_read_tokens)


def model_name(value: Any) -> str | None:
    """The response's model (which model answered, e.g. behind a router): server text, kept short."""
    return value[:10_000] if isinstance(value, str) and value.strip() else None  # redacted, then cut, by measure


def tool_call_text(name: Any, arguments: Any) -> str:
    """A tool call as the stored output shows it: `tool call get_weather({"city": "Paris"})`."""
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments, ensure_ascii=False, sort_keys=True)
    return f"tool call {name if isinstance(name, str) else '?'}({arguments})"


def joined(texts: list[str]) -> str:
    """Several choices (n > 1) kept apart in one stored output."""
    if len(texts) == 1:
        return texts[0]
    return "\n\n".join(f"[choice {i}]\n{text}" for i, text in enumerate(texts))


def _reason(exc: Exception) -> str:
    text = str(exc)
    for marker in ("Connection refused", "Name or service not known", "Connection reset",
                   "Remote end closed", "IncompleteRead", "Connection broken", "timed out"):
        if marker in text:
            return marker.lower()
    return type(exc).__name__
