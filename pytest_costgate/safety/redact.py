"""The one redaction point: every string that leaves the process passes through here.

It knows the secret values in play (the env vars a config names, GitHub tokens, sensitive header
values, URL userinfo, and any env var whose name says it holds a secret) and replaces them, and
their obvious encodings, with `***`. Patterns catch credentials no one registered, such as a key
a server echoes back in another form.
"""
from __future__ import annotations

import base64
import html
import json
import os
import re
import threading
from typing import Any
from urllib.parse import quote, quote_plus, unquote, urlsplit

MASK = "***"
MIN_LENGTH = 4  # shorter values would mask ordinary words and numbers
ENV_SECRET = re.compile(r"(?i)(KEY|TOKEN|SECRET|PASS|CREDENTIAL|AUTH|COOKIE|SESSION|_PWD$)")
ENV_NOT_SECRET = frozenset({"PWD", "OLDPWD", "PASSWD_FILE", "SSH_AUTH_SOCK", "TOKENIZERS_PARALLELISM"})
ENV_MIN_LENGTH = 8  # env vars found by name alone must look like a credential to be masked
SENSITIVE_HEADER = re.compile(r"(?i)(auth|key|token|secret|cookie|session|signature|password|credential)")
# Credentials no one registered: auth schemes, well-known key shapes, URL userinfo, key=... query params.
# Character classes stop at quotes and backslashes so masking JSON text never breaks its syntax.
_PATTERNS = [
    (re.compile(r"\b(Bearer)(\s+)[A-Za-z0-9._~+/=-]{8,}"), r"\1\2" + MASK),
    (re.compile(r"\b(sk|rk|pk)-[A-Za-z0-9_-]{16,}"), r"\1-" + MASK),
    (re.compile(r"\b(gh[pousr]_|github_pat_)[A-Za-z0-9_]{16,}"), r"\1" + MASK),
    (re.compile(r"\b((?i:[a-z][a-z0-9+.-]*)://)[^/\s:@\"'\\<>]*:[^/\s@\"'\\<>]*@"), r"\1" + MASK + "@"),
    (re.compile(r"\b((?i:api[_-]?key|access[_-]?token|token|key|secret|password)=)[^&\s\"'\\<>]{4,}"),
     r"\1" + MASK),
]

# A text holding none of these (nor a registered secret) cannot match a pattern above: each pattern needs
# one of them (tests/test_security.py checks it). Big texts are screened with them, ~100x faster than
# running the regex over every position.
TRIGGERS = ("Bearer", "k-", "gh", "github_pat_", "://", "=")
SCREEN_FROM = 4096  # characters: shorter texts go straight to the regex

_lock = threading.Lock()
_secrets: set[str] = set()
_compiled: re.Pattern[str] | None = None  # rebuilt when a secret is registered
_screen: tuple[str, ...] = ()  # the registered secrets, as of the last build of _compiled


def register(value: Any) -> None:
    """Mask `value` (and its URL-quoted, JSON-escaped and base64 forms) in every output from now on."""
    if not isinstance(value, str):
        return
    value = value.strip()
    if len(value) < MIN_LENGTH:
        return
    quoted = quote(value, safe="")
    forms = {value, quoted, quoted.lower(), quote(value), quote_plus(value), json.dumps(value)[1:-1],
             json.dumps(value)[1:-1].replace("/", "\\/"), unquote(value), html.escape(value),
             " ".join(value.split()), base64.b64encode(value.encode("utf-8", "surrogatepass")).decode()}
    global _compiled
    with _lock:
        before = len(_secrets)
        _secrets.update(f for f in forms if len(f) >= MIN_LENGTH)
        if len(_secrets) != before:
            _compiled = None


def register_url(url: Any) -> None:
    """Mask the userinfo of a URL (`http://user:secret@host`) and its Basic-auth encoding."""
    if not isinstance(url, str):
        return
    try:
        parts = urlsplit(url)
    except ValueError:
        return
    if parts.password:
        register(parts.password)
        register(unquote(parts.password))
    elif parts.username:
        register(parts.username)  # a token passed as the user name (http://TOKEN@host)
        register(unquote(parts.username))
    if parts.username or parts.password:
        pair = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}"
        register(base64.b64encode(pair.encode("utf-8", "surrogatepass")).decode())  # the Basic-auth form


def register_headers(headers: Any) -> None:
    """Mask the values of headers whose names say they carry credentials."""
    if not isinstance(headers, dict):
        return
    for name, value in headers.items():
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) < 10**100:
            value = str(value)  # YAML reads an all-digit key as a number
        if isinstance(name, str) and isinstance(value, str) and SENSITIVE_HEADER.search(name):
            register(value)
            scheme, _, rest = value.partition(" ")
            if rest and scheme.isalpha():
                register(rest)  # "Bearer <token>": the token alone may be echoed


def register_environment(environ: Any = None) -> None:
    """Mask every env var whose name says it holds a secret (GITHUB_TOKEN, OPENAI_API_KEY, ...)."""
    for name, value in (environ if environ is not None else os.environ).items():
        if name.upper() in ENV_NOT_SECRET:
            continue
        if ENV_SECRET.search(name) and isinstance(value, str) and len(value.strip()) >= ENV_MIN_LENGTH:
            register(value)


def _pattern() -> re.Pattern[str]:
    """One regex for every registered secret (longest first) and every credential shape: one pass per text."""
    global _compiled, _screen
    with _lock:
        if _compiled is None:
            parts = [f"(?P<secret>{'|'.join(re.escape(s) for s in sorted(_secrets, key=len, reverse=True))})"] \
                if _secrets else []
            parts += [f"(?P<p{i}>{regex.pattern})" for i, (regex, _) in enumerate(_PATTERNS)]
            _compiled = re.compile("|".join(parts))
            _screen = tuple(_secrets)
        return _compiled


def _replace(match: re.Match[str]) -> str:
    name = match.lastgroup
    if name is None or name == "secret":
        return MASK
    regex, replacement = _PATTERNS[int(name[1:])]
    return regex.sub(replacement, match.group())


def redact(text: str) -> str:
    """`text` with every known secret and credential-shaped string replaced by ***."""
    if not text or len(text) < MIN_LENGTH:
        return text
    pattern = _pattern()
    if len(text) >= SCREEN_FROM and not any(t in text for t in TRIGGERS) and not any(s in text for s in _screen):
        return text
    return pattern.sub(_replace, text)


def shorten(text: object, limit: int) -> str:
    """Redacted, then cut to `limit` characters: cutting first could leave a secret's prefix behind."""
    masked = redact(" ".join(str(text).split()))
    if len(masked) <= limit:
        return masked
    cut = masked[: limit - 1]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit // 2 else cut) + "…"  # at a word's end where there is one


_TOKEN_SHAPED = re.compile(r"[A-Za-z0-9+/=_\-.:]{20,}")


def server_text(text: object, limit: int = 200) -> str:
    """What a server said, fit to show: redacted, every run of 20 or more token characters (a key in another
    form: base64, hex, reversed, upper case, a part of it) masked, cut to `limit`. A server's error text is never
    copied further than this."""
    masked = _TOKEN_SHAPED.sub(lambda m: m.group() if "://" in m.group() else MASK, redact(" ".join(str(text).split())))
    return shorten(masked, limit)


def forget_all() -> None:
    """Drop every registered secret (tests only)."""
    global _compiled
    with _lock:
        _secrets.clear()
        _compiled = None
