"""Money as Decimal: a request's cost under a model's prices (token prices with cache, reasoning, modality and
long-context rates; GPU hours turned into USD per request), monthly projections, and the stored form of a price
table (describe / stored_price), so a report says which prices it applied and a price change is told apart from
a usage change."""
from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from types import MappingProxyType

from ..config.specs import RATE_UNITS, GpuPrice, PriceSource, PriceTier, TokenPrice
from ..store.records import PromptResult
from .usage import Usage, leaves

MILLION = Decimal(1_000_000)
HOUR = Decimal(3600)
_TIER_KEY = re.compile(r"above_([0-9]{1,12})\.([a-z0-9_]+)$")


def rates_for(price: TokenPrice, input_tokens: int) -> dict[str, Decimal]:
    """The rates (by usage unit) a request with this many input tokens is billed at: the highest tier whose
    threshold it is over sets the rates it names, for the whole request (providers' "cliff" tiers)."""
    rates = price.rates()
    for tier in price.tiers:  # ascending: a later tier overrides an earlier one
        if input_tokens > tier.above_input_tokens:
            rates.update(tier.rates)
    return {RATE_UNITS[name]: rate for name, rate in rates.items()}


def token_cost(price: TokenPrice, usage: Usage) -> Decimal:
    """USD for one request: each priced part of its usage at its rate (a part without a rate is billed with what
    it is part of: cache reads as input when no cache price is set), plus the per-request fee."""
    counts = usage.counts()
    rates = rates_for(price, counts.get("input_tokens", 0))
    billed = leaves(counts, set(rates))
    cost = sum((Decimal(billed[unit]) * rate for unit, rate in rates.items() if billed.get(unit)), Decimal(0))
    return cost / MILLION + (price.per_request or 0)


def gpu_cost_measured(usd_per_hour: Decimal, wall_seconds: Decimal, completed: int) -> Decimal:
    """usd_per_hour / 3600 × wall_seconds / completed: what the replay actually cost per request."""
    if completed <= 0:
        raise ValueError("no completed requests to spread the GPU time over")
    return usd_per_hour * wall_seconds / (HOUR * completed)


def gpu_cost_configured(usd_per_hour: Decimal, latency_s: Decimal, concurrency: int,
                        utilization: Decimal = Decimal(1)) -> Decimal:
    """The textbook usd_per_hour / 3600 × latency_s / concurrency (÷ utilization when below 1)."""
    return usd_per_hour * latency_s / (HOUR * concurrency * utilization)


def request_cost(price: TokenPrice | GpuPrice | None, usage: Usage, device_ms: float | None) -> Decimal | None:
    """One request's cost under a model's pricing; None when the pricing needs what wasn't measured.

    For GPU pricing `device_ms` is the device time charged to the request: its own wall time when
    replayed alone, its share of the batch's wall time when batched.
    """
    if price is None:
        return None
    if isinstance(price, TokenPrice):
        if usage.input_tokens is None or usage.output_tokens is None:
            return None
        return token_cost(price, usage)
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
    """The price table stored with results: every unit price applied, and where the table came from."""
    if price is None:
        return None
    if isinstance(price, TokenPrice):
        out = {"kind": "tokens", **{name: str(rate) for name, rate in price.rates().items()}}
        if price.per_request is not None:
            out["per_request"] = str(price.per_request)
        for tier in price.tiers:
            out.update({f"above_{tier.above_input_tokens}.{name}": str(rate) for name, rate in tier.rates.items()})
        if price.source is not None:
            source = price.source
            out.update(source=source.name, source_version=source.version, provider=source.provider,
                       source_model=source.model, at=source.at)
            out.update({f"context.{k}": v for k, v in source.context.items()})
        return out
    out = {"kind": "gpu", "usd_per_hour": str(price.usd_per_hour), "mode": price.mode,
           "concurrency": str(price.concurrency), "utilization": str(price.utilization)}
    if price.latency_s is not None:
        out["latency_s"] = str(price.latency_s)
    return out


def stored_price(described: Mapping[str, str] | None) -> TokenPrice | GpuPrice | None:
    """The price a document stored (describe's form, validated by the schema) as a price object."""
    if not described:
        return None
    try:
        if described.get("kind") == "tokens":
            base = {k: Decimal(v) for k, v in described.items() if k in RATE_UNITS}
            tiers: dict[int, dict[str, Decimal]] = {}
            for key, value in described.items():
                match = _TIER_KEY.match(key)
                if match and match[2] in RATE_UNITS:
                    tiers.setdefault(int(match[1]), {})[match[2]] = Decimal(value)
            named = {k: base.pop(k, None) for k in ("cached_input_per_1m", "cache_write_per_1m",
                                                      "cache_write_1h_per_1m", "reasoning_per_1m")}
            fee = described.get("per_request")
            source = None
            if described.get("source"):
                source = PriceSource(described["source"], described.get("source_version", ""),
                                     described.get("provider", ""), described.get("source_model", ""),
                                     described.get("at", ""),
                                     MappingProxyType({k[8:]: v for k, v in described.items()
                                                       if k.startswith("context.")}))
            return TokenPrice(base.pop("input_per_1m"), base.pop("output_per_1m"), **named,
                              extra_per_1m=MappingProxyType(base), per_request=None if fee is None else Decimal(fee),
                              tiers=tuple(PriceTier(n, MappingProxyType(r)) for n, r in sorted(tiers.items())),
                              source=source)
        latency = described.get("latency_s")
        return GpuPrice(Decimal(described["usd_per_hour"]), described.get("mode", "measured"),
                        int(described.get("concurrency", "1")), None if latency is None else Decimal(latency),
                        Decimal(described.get("utilization", "1")))
    except (KeyError, ArithmeticError, ValueError):
        return None


def record_usage(record: PromptResult) -> Usage:
    """The billed usage a stored per-prompt record holds (cache reads are its cached_tokens)."""
    return Usage(input_tokens=record.input_tokens, output_tokens=record.output_tokens,
                 cache_read_tokens=record.cached_tokens, cache_write_tokens=record.cache_write_tokens,
                 cache_write_1h_tokens=record.cache_write_1h_tokens, output_reasoning_tokens=record.reasoning_tokens,
                 details=record.usage_details or MappingProxyType({}))
