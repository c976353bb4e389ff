"""What an HTTP API model's options must be (openai, anthropic, gemini), checked when the config loads: a bad value
is a clear error naming the option, never a traceback from requests later (which would print its arguments,
headers included)."""
from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from ...safety.redact import register_headers, register_url
from . import check_concurrency

_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
NUMBERS = {"timeout_s": (60.0, False), "connect_timeout_s": (10.0, False), "deadline_s": (300.0, False),
           "backoff_s": (1.0, True), "max_backoff_s": (30.0, True)}  # name: (default, zero allowed)


def seconds(options: Mapping[str, Any], name: str, fail: Callable[[str, str], Exception]) -> float:
    default, zero = NUMBERS[name]
    value = options.get(name, default)
    sane = isinstance(value, (int, float)) and not isinstance(value, bool) and (
        isinstance(value, float) and math.isfinite(value) or isinstance(value, int) and abs(value) <= 10**9)
    if not sane or not (0 < value <= 10**6 or (zero and value == 0)):
        raise fail(name, f"expected a {'non-negative' if zero else 'positive'} number of seconds (at most 1,000,000), "
                         f"got {safe_repr(value)}.")
    return float(value)


def safe_repr(value: Any) -> str:
    """repr() that never fails (Python refuses to print ints of over 4,300 digits) and stays short."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**30:
        return "a number of over 30 digits"
    text = repr(value)
    return text if len(text) <= 60 else text[:59] + "…"



def check_options(options: Mapping[str, Any], fail: Callable[[str, str], Exception]) -> None:
    """An `openai` model: base_url is required; endpoint chat, completions or responses."""
    check_http(options, fail, count_tokens=True)
    if options.get("endpoint", "chat") not in ("chat", "completions", "responses"):
        raise fail("endpoint", "expected 'chat', 'completions' or 'responses'.")


def check_http(options: Mapping[str, Any], fail: Callable[[str, str], Exception], default_url: str | None = None,
               count_tokens: bool = False) -> None:
    """Reject at config load what requests would choke on later (and print its arguments for). `default_url`: the
    provider's own address, used when base_url is left out; `count_tokens`: the API has a free counting endpoint
    (count_tokens: endpoint uses it in tokens-only mode)."""
    url = options.get("base_url", default_url)
    register_url(url)
    try:
        parsed = urlsplit(url) if isinstance(url, str) else None
        host = parsed.hostname if parsed else None
        parsed.port if parsed else None  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        host = None
    if not isinstance(url, str) or not url.startswith(("http://", "https://")) or not host \
            or any(c.isspace() or not c.isprintable() or c == "\\" for c in url):
        raise fail("base_url", "expected an http(s) URL such as http://127.0.0.1:8000/v1 (no spaces).")
    if len(url) > 2000:
        raise fail("base_url", "is over 2,000 characters.")
    model = options.get("model")
    if model is not None and (not isinstance(model, str) or not model.strip() or len(model) > 500):
        raise fail("model", "expected the model name the server knows (text of at most 500 characters).")
    if options.get("count_tokens", "tokenizer") not in (("tokenizer", "endpoint") if count_tokens else ("tokenizer",)):
        raise fail("count_tokens", "expected 'tokenizer' or 'endpoint' (the provider's free token-counting call, "
                   "used in tokens-only mode)." if count_tokens else "this API has no token-counting endpoint; "
                   "leave count_tokens out (tokens are counted with the tokenizer).")
    for name in NUMBERS:
        seconds(options, name, fail)
    check_concurrency(options, fail)
    retries = options.get("max_retries", 3)
    if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 100:
        raise fail("max_retries", f"expected a whole number from 0 to 100, got {safe_repr(retries)}.")
    key_env = options.get("api_key_env")
    if key_env is not None and (not isinstance(key_env, str) or not _ENV_NAME.match(key_env)):
        raise fail("api_key_env", "expected the NAME of an environment variable (e.g. OPENAI_API_KEY), "
                                  "not the key itself.")
    if key_env is not None and parsed is not None and (parsed.username or parsed.password):
        raise fail("base_url", "carries credentials (user:password@) and api_key_env is set too; requests "
                               "would send the Basic credentials instead of the key. Use one of them.")
    headers = options.get("headers", {})
    if not isinstance(headers, dict):
        raise fail("headers", "expected a mapping of header names to values.")
    register_headers(headers)
    for name, value in headers.items():
        if not isinstance(name, str) or not _HEADER_NAME.match(name) or len(name) > 200:
            raise fail("headers", f"header name {safe_repr(name)} is not a valid HTTP header name.")
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) < 10**100:
            value = str(value)
        if not isinstance(value, str) or len(value) > 8192 or any(c in value for c in "\r\n\0"):
            raise fail("headers", f"the value of header {name!r} must be text on one line (no CR, LF or NUL), "
                                  "at most 8,192 characters.")
