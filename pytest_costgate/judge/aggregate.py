"""A suite's per-prompt records summarised: exact weighted means for judging, stored metrics, latency statistics.

Means are exact fractions (sums in a wide decimal context, one division at the end), so a change
that equals a threshold never breaches it because of rounding, at any magnitude.
"""
from __future__ import annotations

import decimal
import itertools
import math
import operator
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from typing import Any

from ..store.document import Metrics, decimal_text
from ..store.records import PromptResult, Records

_WIDE = decimal.Context(prec=120, Emax=10**6, Emin=-(10**6))  # sums of money and tokens stay exact


def stats(values: Iterable[float | None]) -> dict[str, float] | None:
    """n, mean, std, min, max and p50/p90/p95/p99 (linear interpolation), or None for no values."""
    data = sorted(v for v in values if v is not None and math.isfinite(v))
    if not data:
        return None
    n = len(data)
    mean = math.fsum(data) / n
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in data) / (n - 1)) if n > 1 else 0.0

    def pct(q: float) -> float:
        pos = (n - 1) * q
        low = math.floor(pos)
        high = min(low + 1, n - 1)
        return data[low] + (data[high] - data[low]) * (pos - low)

    return {"n": n, "mean": mean, "std": std, "min": data[0], "max": data[-1],
            "p50": pct(0.5), "p90": pct(0.9), "p95": pct(0.95), "p99": pct(0.99)}


@dataclass(frozen=True)
class Aggregate:
    """Exact suite figures: fractions for means and money, ints for counts."""

    n: int = 0
    errors: int = 0
    error_rate: Fraction = Fraction(0)
    input_tokens_mean: Fraction | None = None
    input_tokens_total: int = 0
    output_tokens_mean: Fraction | None = None
    output_tokens_total: int = 0
    cost_per_request: Fraction | None = None
    monthly_cost: Fraction | None = None
    latency_p50: Fraction | None = None
    latency_p95: Fraction | None = None
    latency: Mapping[str, dict[str, float] | None] = field(default_factory=dict)
    cache_hit_ratio: Fraction | None = None
    cacheable_prefix_share: Fraction | None = None
    escalation_rate: Fraction | None = None
    served: Mapping[str, Fraction] = field(default_factory=dict)  # model -> share of requests (routed suites)
    cost_per_resolved: Fraction | None = None  # set when judged with a quality rule (see compare.py)
    reasoning_tokens_mean: Fraction | None = None  # when any answer reported its reasoning tokens

    def value(self, metric: str) -> Fraction | None:
        value = getattr(self, metric, None)
        return Fraction(value) if isinstance(value, int) else value

    def metrics(self) -> Metrics:
        """The stored form: decimals with 12 places."""
        def dec(value: Fraction | None) -> Decimal | None:
            return None if value is None else Decimal(decimal_text(value))

        return Metrics(n=self.n, errors=self.errors, error_rate=dec(self.error_rate) or Decimal(0),
                       input_tokens_mean=dec(self.input_tokens_mean), input_tokens_total=self.input_tokens_total,
                       output_tokens_mean=dec(self.output_tokens_mean), output_tokens_total=self.output_tokens_total,
                       cost_per_request=dec(self.cost_per_request), monthly_cost=dec(self.monthly_cost),
                       latency_p50=dec(self.latency_p50), latency_p95=dec(self.latency_p95),
                       cache_hit_ratio=dec(self.cache_hit_ratio), cacheable_prefix_share=dec(self.cacheable_prefix_share),
                       escalation_rate=dec(self.escalation_rate),
                       reasoning_tokens_mean=dec(self.reasoning_tokens_mean))


def _weighted_mean(weights: Sequence[Decimal], values: Sequence[Decimal | int] | Sequence[Fraction], unit: bool) -> Fraction | None:
    """Exact sum of weight x value over the sum of weights (ints summed as ints when every weight is 1)."""
    if not values:
        return None
    if unit and int in set(map(type, values)) and len(set(map(type, values))) == 1:
        return Fraction(sum(values), len(values))  # type: ignore[arg-type]
    with decimal.localcontext(_WIDE):
        total = sum(values, Decimal(0)) if unit else sum(map(operator.mul, weights, values), Decimal(0))
        weight = Decimal(len(values)) if unit else sum(weights, Decimal(0))
    return None if weight == 0 else Fraction(total) / Fraction(weight)


def has_none(values: Iterable[Any]) -> bool:
    """Whether None is among `values`, by identity: `None in` a list of Decimals compares each one with None,
    and each comparison asks whether None is a numbers.Rational (an ABC check: 0.2 s a million)."""
    return any(map(operator.is_, values, itertools.repeat(None)))


def _column(results: Sequence[PromptResult] | Records, name: str) -> Sequence[Any]:
    if isinstance(results, Records):
        return results.column(name)
    return [getattr(r, name) for r in results]


def _share(weights: Sequence[Decimal], part: Sequence[int], whole: Sequence[int], unit: bool) -> Fraction | None:
    """Σ weight x part over Σ weight x whole, exactly (None when the whole is 0)."""
    top, bottom = _weighted_mean(weights, part, unit), _weighted_mean(weights, whole, unit)
    return None if top is None or not bottom else top / bottom


def aggregate(results: Sequence[PromptResult] | Records, requests_per_month: Decimal | None,
              errors_over: Sequence[PromptResult] | Records | None = None,
              default_model: str | None = None) -> Aggregate:
    """Suite metrics over `results`; the error rate over `errors_over` when given (e.g. every prompt both
    sides measured, failed or not, while tokens and cost are compared over prompts both answered).
    Computed a column at a time, so column-wise Records of a million prompts cost little."""
    counted = results if errors_over is None else errors_over
    n = len(counted)
    errors = n - list(_column(counted, "error")).count(None)
    failed = _column(results, "error")
    if list(failed).count(None) != len(failed):  # keep the answered prompts only
        keep = [i for i, e in enumerate(failed) if e is None]
        results = results.select(keep) if isinstance(results, Records) else [results[i] for i in keep]
    weights = _column(results, "weight")
    unit = all(w == 1 for w in set(weights))
    costs = _column(results, "cost")
    cost = None if has_none(costs) else _weighted_mean(weights, costs, unit)
    inputs = _column(results, "input_tokens")
    inputs = [v or 0 for v in inputs] if None in inputs else inputs
    outputs = _column(results, "output_tokens")
    outputs = [v or 0 for v in outputs] if None in outputs else outputs
    latency: dict[str, dict[str, float] | None] = {}
    timed: list[int] | None = None
    for name in ("e2e_ms", "ttft_ms", "tpot_ms"):
        values = _column(results, name)
        if values.count(None) == len(values):  # tokens-only: nothing was timed
            latency[name] = None
            continue
        if timed is None:  # a record copied from the baseline was not timed now
            timed = [i for i, reused in enumerate(_column(results, "reused")) if not reused]
        latency[name] = stats(values[i] for i in timed)
    e2e = latency["e2e_ms"]
    # A share of the input never exceeds it: cached or cacheable counts above a request's input tokens (another
    # tokenizer's count, an edited file) count as its whole input.
    cached = _column(results, "cached_tokens")
    cache_hit = None if list(cached).count(None) == len(cached) else \
        _share(weights, [min(c or 0, i) for c, i in zip(cached, inputs)], inputs, unit)
    cacheable = _column(results, "cacheable_tokens")
    prefix = None if list(cacheable).count(None) == len(cacheable) else \
        _share(weights, [min(c or 0, i) for c, i in zip(cacheable, inputs)], inputs, unit)
    reasoning = _column(results, "reasoning_tokens")
    reasoning_mean = None if list(reasoning).count(None) == len(reasoning) else \
        _weighted_mean(weights, [v or 0 for v in reasoning], unit)
    served: dict[str, Fraction] = {}
    escalation = None
    if default_model is not None:  # a routed suite: the mix of models that answered, by weight
        answered = [(w, m) for w, m, e in zip(weights, _column(results, "served_by"), _column(results, "error"))
                    if e is None and m is not None]
        total = sum((Fraction(w) for w, _ in answered), Fraction(0))
        if total:
            for name in sorted({m for _, m in answered}):
                served[name] = sum((Fraction(w) for w, m in answered if m == name), Fraction(0)) / total
            escalation = 1 - served.get(default_model, Fraction(0))
    return Aggregate(
        cache_hit_ratio=cache_hit, cacheable_prefix_share=prefix, escalation_rate=escalation, served=served,
        reasoning_tokens_mean=reasoning_mean,
        n=n, errors=errors, error_rate=Fraction(errors, n) if n else Fraction(0),
        input_tokens_mean=_weighted_mean(weights, inputs, unit), input_tokens_total=sum(inputs),
        output_tokens_mean=_weighted_mean(weights, outputs, unit), output_tokens_total=sum(outputs),
        cost_per_request=cost,
        monthly_cost=None if cost is None or requests_per_month is None else cost * Fraction(requests_per_month),
        latency_p50=Fraction(Decimal(repr(round(e2e["p50"], 3)))) if e2e else None,
        latency_p95=Fraction(Decimal(repr(round(e2e["p95"], 3)))) if e2e else None,
        latency=latency,
    )


def subset(results: Iterable[PromptResult] | Records, ids: set[str]) -> list[PromptResult] | Records:
    """Records whose id is in `ids`, in their original order."""
    if isinstance(results, Records):
        if len(ids) == len(results.ids) and ids.issuperset(results.ids):  # all of them (ids are unique)
            return results
        return results.select([i for i, pid in enumerate(results.ids) if pid in ids])
    return [r for r in results if r.id in ids]
