"""Retry timing shared by the HTTP clients: Retry-After and rate-limit reset headers."""
from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping


def retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def rate_limit_wait(headers: Mapping[str, str]) -> float | None:
    """Seconds until a GitHub-style rate limit resets: Retry-After, else X-RateLimit-Reset when exhausted."""
    wait = retry_after(headers.get("Retry-After"))
    if wait is not None:
        return wait
    if headers.get("X-RateLimit-Remaining") == "0" and headers.get("X-RateLimit-Reset", "").isdigit():
        return max(0.0, int(headers["X-RateLimit-Reset"]) - time.time())
    return None
