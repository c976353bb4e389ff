"""Why a suite's monthly cost moved: the change split into volume, usage and price, and what inputs changed.

    base monthly = V_b x C(U_b, P_b)          head monthly = V_h x C(U_h, P_h)
    volume = (V_h - V_b) x C(U_b, P_b)        requests per month changed
    usage  = V_h x (C(U_h, P_b) - C(U_b, P_b)) tokens or GPU time changed, priced at the baseline's prices
    price  = V_h x (C(U_h, P_h) - C(U_h, P_b)) the price list changed, at the head's usage

The three sum to the change exactly, so "the provider raised prices" is never read as "our prompt grew".
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from decimal import Decimal
from fractions import Fraction

from ..config.specs import GpuPrice, TokenPrice
from ..pricing.prices import MILLION, record_usage, request_cost, stored_price
from ..store.document import Attribution, SuiteEntry, decimal_text
from ..store.records import PromptResult, Records
from .aggregate import _column, _weighted_mean, has_none


def _answered(results: Sequence[PromptResult] | Records) -> Sequence[PromptResult] | Records:
    failed = _column(results, "error")
    if list(failed).count(None) == len(failed):
        return results
    keep = [i for i, e in enumerate(failed) if e is None]
    return results.select(keep) if isinstance(results, Records) else [results[i] for i in keep]


def mean_cost(results: Sequence[PromptResult] | Records) -> Fraction | None:
    """The exact weighted mean of the stored per-request costs of the answered prompts (as `aggregate`)."""
    results = _answered(results)
    costs = _column(results, "cost")
    if not len(results) or has_none(costs):
        return None
    weights = _column(results, "weight")
    return _weighted_mean(weights, costs, all(w == 1 for w in set(weights)))


def repriced(results: Sequence[PromptResult] | Records, price: TokenPrice | GpuPrice,
             projected: bool = False) -> Fraction | None:
    """The mean cost per request of these records under another price list (answered prompts, weighted, as
    `aggregate` computes cost_per_request). Token prices are linear, so column sums do; GPU prices go per record.
    `projected`: tokens-only records, whose cached input is the prefix a cache could serve (cacheable_tokens),
    as their cost was computed; else the server-reported cached_tokens."""
    results = _answered(results)
    if not len(results):
        return None
    weights = _column(results, "weight")
    unit = all(w == 1 for w in set(weights))
    if isinstance(price, TokenPrice) and price.linear:  # mean tokens x rates: column sums do
        inputs = [v or 0 for v in _column(results, "input_tokens")]
        outputs = [v or 0 for v in _column(results, "output_tokens")]
        cached = [min(c or 0, i) for c, i in zip(_column(results, "cacheable_tokens" if projected else
                                                          "cached_tokens"), inputs)] \
            if price.cached_input_per_1m is not None else None
        mean_in, mean_out = _weighted_mean(weights, inputs, unit), _weighted_mean(weights, outputs, unit)
        if mean_in is None or mean_out is None:
            return None
        cost = mean_in * Fraction(price.input_per_1m) + mean_out * Fraction(price.output_per_1m)
        if cached is not None and price.cached_input_per_1m is not None:
            mean_cached = _weighted_mean(weights, cached, unit) or Fraction(0)
            cost += mean_cached * (Fraction(price.cached_input_per_1m) - Fraction(price.input_per_1m))
        return cost / Fraction(MILLION)
    costs = []  # tiers, fees, cache writes, GPU time: request by request
    for record in (results.values() if isinstance(results, Records) else results):
        device = record.busy_ms if record.busy_ms is not None else record.e2e_ms
        usage = record_usage(record)
        if projected:
            usage = replace(usage, cache_read_tokens=record.cacheable_tokens)
        each = request_cost(price, usage, device)
        if each is None:
            return None
        costs.append(each)
    return _weighted_mean(weights, costs, unit)


def _results(entry: SuiteEntry) -> Sequence[PromptResult] | Records:
    return entry.prompts if isinstance(entry.prompts, Records) else list(entry.prompts.values())


def file_changes(entry: SuiteEntry, base: SuiteEntry) -> tuple[tuple[str, ...], ...]:
    """Template files changed, added and removed since the baseline (none known when either side predates
    per-file hashes: the template hash still tells that something changed)."""
    head_files, base_files = dict(entry.template_files), dict(base.template_files)
    if not head_files or not base_files:
        return (), (), ()
    return (tuple(f for f in head_files if f in base_files and head_files[f] != base_files[f]),
            tuple(f for f in head_files if f not in base_files), tuple(f for f in base_files if f not in head_files))


def attribute(entry: SuiteEntry, base: SuiteEntry | None) -> Attribution | None:
    """The split of the monthly change and the inputs that changed; None without a baseline entry."""
    if base is None:
        return None
    changed, added, removed = file_changes(entry, base)
    split: dict[str, Decimal | None] = {"volume": None, "usage": None, "price": None}
    head_price, base_price = stored_price(entry.pricing), stored_price(base.pricing)
    volume_b, volume_h = base.requests_per_month, entry.requests_per_month
    if head_price is not None and base_price is not None and volume_b is not None and volume_h is not None \
            and type(head_price) is type(base_price):
        head, old = _results(entry), _results(base)
        # Exact means from the records (the stored metrics are rounded to 12 places), so the parts sum exactly.
        costs = (mean_cost(old), repriced(head, base_price, entry.mode == "tokens-only"), mean_cost(head))
        if None not in costs:
            cb, cross, ch = (Fraction(c) for c in costs)  # type: ignore[arg-type]
            vb, vh = Fraction(volume_b), Fraction(volume_h)
            parts = {"volume": (vh - vb) * cb, "usage": vh * (cross - cb), "price": vh * (ch - cross)}
            split = {k: Decimal(decimal_text(v)) for k, v in parts.items()}
    return Attribution(
        volume=split["volume"], usage=split["usage"], price=split["price"],
        files_changed=changed, files_added=added, files_removed=removed,
        template_changed=bool(base.template_hash and entry.template_hash and base.template_hash != entry.template_hash),
        prompt_set_changed=bool(base.prompt_set.get("sha256") and entry.prompt_set.get("sha256")
                                and base.prompt_set.get("sha256") != entry.prompt_set.get("sha256")),
        base_model=base.model if base.model != entry.model else None,
        base_pricing=dict(base.pricing) if base.pricing is not None and base.pricing != entry.pricing else None,
        base_requests_per_month=volume_b if volume_b != volume_h else None,
        base_cost_per_request=base.metrics.cost_per_request, base_monthly_cost=base.metrics.monthly_cost,
        params_changed=tuple((k, base.params.get(k), entry.params.get(k)) for k in sorted(set(base.params) |
                                                                                          set(entry.params))
                             if base.params and base.params.get(k) != entry.params.get(k)),
    )


