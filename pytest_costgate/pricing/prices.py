"""Money as Decimal: token prices, GPU hours turned into USD per request, monthly projections."""
from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from ..config.specs import GpuPrice, TokenPrice

MILLION = Decimal(1_000_000)
HOUR = Decimal(3600)


def token_cost(price: TokenPrice, input_tokens: int, output_tokens: int, cached_tokens: int = 0) -> Decimal:
    """USD for one request at per-million-token prices; cached input billed at its own price."""
    cached = min(cached_tokens, input_tokens) if price.cached_input_per_1m is not None else 0
    cost = Decimal(input_tokens - cached) * price.input_per_1m + Decimal(output_tokens) * price.output_per_1m
    if cached:
        assert price.cached_input_per_1m is not None
        cost += Decimal(cached) * price.cached_input_per_1m
    return cost / MILLION


def gpu_cost_measured(usd_per_hour: Decimal, wall_seconds: Decimal, completed: int) -> Decimal:
    """usd_per_hour / 3600 × wall_seconds / completed: what the replay actually cost per request."""
    if completed <= 0:
        raise ValueError("no completed requests to spread the GPU time over")
    return usd_per_hour * wall_seconds / (HOUR * completed)


def gpu_cost_configured(usd_per_hour: Decimal, latency_s: Decimal, concurrency: int,
                        utilization: Decimal = Decimal(1)) -> Decimal:
    """The textbook usd_per_hour / 3600 × latency_s / concurrency (÷ utilization when below 1)."""
    return usd_per_hour * latency_s / (HOUR * concurrency * utilization)


def request_cost(price: TokenPrice | GpuPrice | None, input_tokens: int | None, output_tokens: int | None,
                 cached_tokens: int | None, device_ms: float | None) -> Decimal | None:
    """One request's cost under a model's pricing; None when the pricing needs what wasn't measured.

    For GPU pricing `device_ms` is the device time charged to the request: its own wall time when
    replayed alone, its share of the batch's wall time when batched.
    """
    if price is None:
        return None
    if isinstance(price, TokenPrice):
        if input_tokens is None or output_tokens is None:
            return None
        return token_cost(price, input_tokens, output_tokens, cached_tokens or 0)
    if price.mode == "configured" and price.latency_s is not None:
        return gpu_cost_configured(price.usd_per_hour, price.latency_s, price.concurrency, price.utilization)
    if device_ms is None:
        return None
    seconds = Decimal(repr(device_ms)) / 1000
    if price.mode == "configured":
        return gpu_cost_configured(price.usd_per_hour, seconds, price.concurrency, price.utilization)
    # Sequential replay: each request held the whole GPU for its wall time.
    return gpu_cost_measured(price.usd_per_hour, seconds, 1)


def monthly(cost_per_request: Decimal | None, requests_per_month: Decimal | None) -> Decimal | None:
    """Projected USD per month, or None when traffic or cost is unknown."""
    if cost_per_request is None or requests_per_month is None:
        return None
    return cost_per_request * requests_per_month


def describe(price: TokenPrice | GpuPrice | None) -> dict[str, str] | None:
    """The price table entry stored with results, so price changes are told apart from usage."""
    if price is None:
        return None
    if isinstance(price, TokenPrice):
        out = {"kind": "tokens", "input_per_1m": str(price.input_per_1m), "output_per_1m": str(price.output_per_1m)}
        if price.cached_input_per_1m is not None:
            out["cached_input_per_1m"] = str(price.cached_input_per_1m)
        return out
    out = {"kind": "gpu", "usd_per_hour": str(price.usd_per_hour), "mode": price.mode,
           "concurrency": str(price.concurrency), "utilization": str(price.utilization)}
    if price.latency_s is not None:
        out["latency_s"] = str(price.latency_s)
    return out


def stored_price(described: Mapping[str, str] | None) -> TokenPrice | GpuPrice | None:
    """The price a document stored (pricing.describe's form, validated by the schema) as a price object."""
    if not described:
        return None
    try:
        if described.get("kind") == "tokens":
            cached = described.get("cached_input_per_1m")
            return TokenPrice(Decimal(described["input_per_1m"]), Decimal(described["output_per_1m"]),
                              None if cached is None else Decimal(cached))
        latency = described.get("latency_s")
        return GpuPrice(Decimal(described["usd_per_hour"]), described.get("mode", "measured"),
                        int(described.get("concurrency", "1")), None if latency is None else Decimal(latency),
                        Decimal(described.get("utilization", "1")))
    except (KeyError, ArithmeticError, ValueError):
        return None
