"""A model's `pricing:` read into a price value: typed by hand (token rates, cache writes, reasoning, modalities,
a per-request fee, long-context tiers; or GPU hours), or taken from a maintained, dated source: pydantic's
genai-prices (an optional extra, `pip install "pytest-costgate[prices]"`), read at a date fixed in the config, so
the same config gives the same prices next month and a price change is a reviewed change of that date (or of the
package's version)."""
from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from .specs import EXTRA_RATES, RATE_UNITS, GpuPrice, ModelSpec, PriceSource, PriceTier, TokenPrice
from .yamlsrc import Key, Reader

# genai-prices' price keys -> costgate's rate names (config/specs.py: RATE_UNITS)
PRICE_KEYS = {
    "input_mtok": "input_per_1m", "output_mtok": "output_per_1m", "cache_read_mtok": "cached_input_per_1m",
    "cache_write_mtok": "cache_write_per_1m", "cache_write_1h_mtok": "cache_write_1h_per_1m",
    "output_reasoning_mtok": "reasoning_per_1m", "input_audio_mtok": "input_audio_per_1m",
    "input_image_mtok": "input_image_per_1m", "input_video_mtok": "input_video_per_1m",
    "cache_audio_read_mtok": "cached_audio_input_per_1m", "cache_image_read_mtok": "cached_image_input_per_1m",
    "input_tool_mtok": "input_tool_per_1m", "output_audio_mtok": "output_audio_per_1m",
    "output_image_mtok": "output_image_per_1m", "output_video_mtok": "output_video_per_1m",
}
# billed per something costgate does not measure (web searches, audio hours, pages): never part of a replay's cost
NOT_TOKENS = ("kcount", "hours", "mchars", "kpages", "seconds")


class SourceError(ValueError):
    """The source can't price this model: not installed, no such provider or model, prices costgate can't apply."""


def parse_when(value: Any) -> dt.datetime:
    """A date or time the prices are read at (YAML gives a date, a datetime or text); UTC when no zone is given."""
    if isinstance(value, dt.datetime):
        when = value
    elif isinstance(value, dt.date):
        when = dt.datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        try:
            when = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            raise SourceError(f"{value!r} is not a date; write it as 2026-11-01 (or 2026-11-01T12:00:00Z)") from None
    else:
        raise SourceError(f"{value!r} is not a date; write it as 2026-11-01")
    return when if when.tzinfo is not None else when.replace(tzinfo=dt.timezone.utc)


def genai_prices(provider: str | None, model: str, when: dt.datetime,
                 context: Mapping[str, str] | None = None) -> TokenPrice:
    """The model's token prices in genai-prices' bundled data as of `when`."""
    try:
        import genai_prices
        from genai_prices import data_snapshot, types
    except ImportError as exc:
        raise SourceError(f"pricing from genai-prices needs the package, which is not importable here ({exc}); "
                          'install it: pip install "pytest-costgate[prices]" (Python 3.11+)') from None
    snapshot = data_snapshot.get_snapshot()
    try:
        found_provider, info = snapshot.find_provider_model(model, None, provider, None)
    except LookupError as exc:
        known = sorted(p.id for p in snapshot.providers)
        hint = "" if provider is None or provider in known else f" Known providers: {', '.join(known)}."
        raise SourceError(f"genai-prices {genai_prices.__version__} has no model {model!r}"
                          + (f" for provider {provider!r}" if provider else "") + f" ({exc}).{hint}") from None
    prices = info.get_prices(when, dict(context) if context else None)
    base: dict[str, Decimal] = {}
    tiers: dict[int, dict[str, Decimal]] = {}
    per_request = None
    skipped = []
    for key, value in prices.__dict__.items():
        if value is None or key.startswith("_"):
            continue
        if key == "requests_kcount":
            per_request = Decimal(value) / 1000
            continue
        name = PRICE_KEYS.get(key)
        if name is None:
            if key.endswith(NOT_TOKENS):
                continue  # e.g. web searches: a replay reports none, as genai-prices would then charge none
            skipped.append(key)
            continue
        if isinstance(value, types.TieredPrices):
            base[name] = value.base
            for tier in value.tiers:
                tiers.setdefault(tier.start, {})[name] = tier.price
        else:
            base[name] = value
    if skipped:
        raise SourceError(f"genai-prices prices {info.id} by {', '.join(sorted(skipped))}, which costgate does not "
                          "apply; give its prices by hand (input_per_1m, output_per_1m, ...)")
    if "input_per_1m" not in base or "output_per_1m" not in base:
        raise SourceError(f"genai-prices has no token prices for {info.id} (it is priced by "
                          f"{', '.join(k for k, v in prices.__dict__.items() if v is not None) or 'nothing'}); give "
                          "its prices by hand")
    named = {k: base.pop(k, None) for k in ("cached_input_per_1m", "cache_write_per_1m", "cache_write_1h_per_1m",
                                              "reasoning_per_1m")}
    source = PriceSource("genai-prices", genai_prices.__version__, found_provider.id, info.id,
                         when.date().isoformat() if when.time() == dt.time(0) and when.utcoffset() == dt.timedelta(0)
                         else when.isoformat(), MappingProxyType(dict(context or {})))
    return TokenPrice(base.pop("input_per_1m"), base.pop("output_per_1m"), **named,
                      extra_per_1m=MappingProxyType(base), per_request=per_request,
                      tiers=tuple(PriceTier(start, MappingProxyType(r)) for start, r in sorted(tiers.items())),
                      source=source)


SOURCES = ("genai-prices",)
SOURCE_OPTIONS = frozenset({"from", "provider", "model", "at", "service_tier"})
GPU_OPTIONS = frozenset({"usd_per_hour", "mode", "concurrency", "latency_s", "utilization"})
TOKEN_OPTIONS = frozenset(RATE_UNITS) | {"per_request", "tiers"}


def read_pricing(r: Reader, key: Key, model: str, price_date: Any) -> TokenPrice | GpuPrice:
    """A model's `pricing:` node; `model` is the API model name (for a source), `price_date` the config's top-level
    pricing date (the default date to read a source at)."""
    node = r.value(key)
    if isinstance(node, dict) and "usd_per_hour" in node:
        return _gpu(r, key)
    if isinstance(node, dict) and "from" in node:
        return _from_source(r, key, model, price_date)
    r.mapping(key, TOKEN_OPTIONS | {"usd_per_hour", "from"}, required=("input_per_1m", "output_per_1m"))
    rates = _rates(r, key, node)
    tiers: list[PriceTier] = []
    if "tiers" in node:
        items = r.value(key + ("tiers",))
        if not isinstance(items, list) or not items:
            raise r.fail(key + ("tiers",), "expected a list of tiers, e.g. [{above_input_tokens: 200000, "
                         "input_per_1m: 2.50, output_per_1m: 15}].")
        for i in range(len(items)):
            tkey = key + ("tiers", i)
            tier = r.mapping(tkey, frozenset(RATE_UNITS) | {"above_input_tokens"}, required=("above_input_tokens",))
            above = int(r.number(tkey + ("above_input_tokens",), Decimal(1), integer=True, maximum=Decimal(10**9)))
            if tiers and above <= tiers[-1].above_input_tokens:
                raise r.fail(tkey + ("above_input_tokens",), "tiers go in rising order of above_input_tokens.")
            own = _rates(r, tkey, tier)
            if not own:
                raise r.fail(tkey, "a tier sets at least one rate, e.g. input_per_1m.")
            tiers.append(PriceTier(above, MappingProxyType(own)))
    per_request = r.number(key + ("per_request",)) if "per_request" in node else None
    return _token_price(rates, per_request, tuple(tiers), None)


def _rates(r: Reader, key: Key, node: Mapping[str, Any]) -> dict[str, Decimal]:
    return {name: r.number(key + (name,)) for name in RATE_UNITS if name in node}


def _token_price(rates: dict[str, Decimal], per_request: Decimal | None, tiers: tuple[PriceTier, ...],
                 source: PriceSource | None) -> TokenPrice:
    named = {k: rates.pop(k, None) for k in ("cached_input_per_1m", "cache_write_per_1m", "cache_write_1h_per_1m",
                                               "reasoning_per_1m")}
    extra = {k: rates.pop(k) for k in list(rates) if k in EXTRA_RATES}
    return TokenPrice(rates.pop("input_per_1m"), rates.pop("output_per_1m"), **named,
                      extra_per_1m=MappingProxyType(extra), per_request=per_request, tiers=tiers, source=source)


def _gpu(r: Reader, key: Key) -> GpuPrice:
    node = r.mapping(key, GPU_OPTIONS)
    price = GpuPrice(
        usd_per_hour=r.number(key + ("usd_per_hour",)),
        mode=r.string(key + ("mode",), ("measured", "configured")) if "mode" in node else "measured",
        concurrency=int(r.number(key + ("concurrency",), Decimal(1), integer=True)) if "concurrency" in node else 1,
        latency_s=r.number(key + ("latency_s",)) if "latency_s" in node else None,
        utilization=r.number(key + ("utilization",)) if "utilization" in node else Decimal(1),
    )
    if not 0 < price.utilization <= 1:
        raise r.fail(key + ("utilization",), "expected a fraction in (0, 1], e.g. 0.8.")
    return price


def _from_source(r: Reader, key: Key, model: str, price_date: Any) -> TokenPrice:
    node = r.mapping(key, SOURCE_OPTIONS)
    r.string(key + ("from",), SOURCES)
    when_value = node.get("at", price_date)
    if when_value is None:
        raise r.fail(key, "prices from genai-prices change over time: say the date to read them at, e.g. "
                     "at: 2026-11-01 (or pricing: {date: 2026-11-01} at the top of the file). The gate never reads "
                     "them as of 'now', so the same config gives the same cost next month.")
    try:
        when = parse_when(when_value)
    except SourceError as exc:
        raise r.fail(key + (("at",) if "at" in node else ()), f"{exc}.") from None
    name = r.string(key + ("model",)) if "model" in node else model
    provider = r.string(key + ("provider",)) if "provider" in node else None
    context = {"service_tier": r.string(key + ("service_tier",))} if "service_tier" in node else None
    try:
        return genai_prices(provider, name, when, context)
    except SourceError as exc:
        raise r.fail(key, f"{exc}.") from None


PROVIDERS = {"anthropic": "anthropic", "gemini": "google"}  # a backend's provider in genai-prices (openai: by name)


def check_against_source(model: ModelSpec, when: dt.datetime) -> tuple[str, list[str]]:
    """A hand-typed price next to genai-prices' for the same model: ('same' | 'differs' | 'unknown' | 'skipped',
    lines saying which rates differ or why it was not compared)."""
    price = model.pricing
    if not isinstance(price, TokenPrice) or price.source is not None:
        return "skipped", ["not hand-typed token prices"]
    name = str(model.options.get("model", model.name))
    try:
        found = genai_prices(PROVIDERS.get(model.backend), name, when)
    except SourceError as exc:
        return "unknown", [str(exc)]
    assert found.source is not None
    ours, theirs = price.rates(), found.rates()
    lines = [f"{rate}: {ours.get(rate, 'unset')} here, {theirs.get(rate, 'unset')} in genai-prices "
             f"{found.source.version} ({found.source.provider}/{found.source.model} on {found.source.at})"
             for rate in sorted(set(ours) | set(theirs)) if ours.get(rate) != theirs.get(rate)]
    if (price.per_request or 0) != (found.per_request or 0):
        lines.append(f"per_request: {price.per_request or 0} here, {found.per_request or 0} in genai-prices")
    if {t.above_input_tokens: dict(t.rates) for t in price.tiers} != {t.above_input_tokens: dict(t.rates)
                                                                      for t in found.tiers}:
        lines.append("tiers: " + (", ".join(f"above {t.above_input_tokens} input tokens" for t in found.tiers)
                                  or "none") + " in genai-prices; " + (", ".join(
                                      f"above {t.above_input_tokens}" for t in price.tiers) or "none") + " here")
    return ("differs" if lines else "same"), lines
