"""Pure comparison of a suite with its baseline: threshold rules, levels, what changed and why."""
from __future__ import annotations

import decimal
from collections.abc import Collection, Mapping
from decimal import Decimal
from fractions import Fraction
from typing import Any

from ..config.thresholds import METRICS, MetricRule
from ..store.verdicts import ORDER, Row, SuiteVerdict

WIDE = decimal.Context(prec=80, Emax=10**6, Emin=-(10**6))


def _dec(value: Fraction | Decimal) -> Decimal:
    if isinstance(value, Fraction):
        return WIDE.divide(Decimal(value.numerator), Decimal(value.denominator))
    return value


def _fmt(value: Fraction | Decimal | None) -> str | None:
    """A value for a verdict row: whole numbers as such, per-request dollars with 6 significant digits, the rest
    with 4 places; never more precise than the 12 places documents keep."""
    if value is None:
        return None
    value = _dec(value).quantize(Decimal("1e-12"), context=WIDE)
    if value == value.to_integral_value(context=WIDE):
        return f"{value.quantize(Decimal(1), context=WIDE):f}"
    if abs(value) < 1:  # per-request dollars: keep 6 significant digits
        return f"{Decimal(f'{value:.6g}').normalize(context=WIDE):f}"
    return f"{value.quantize(Decimal('1e-4'), context=WIDE).normalize(context=WIDE):f}"


def compare_metric(metric: str, base: Fraction | Decimal | None, cand: Fraction | Decimal | None,
                   rule: MetricRule | None, comparable: bool,
                   pairs: tuple[list[float], list[float]] | None = None,
                   noise: Mapping[str, Any] | None = None) -> Row | None:
    """Judge one metric exactly; None when either side has no value.

    With `pairs` (per-prompt values of a noisy metric, base and head) the paired rule decides:
    a level is reached only when its threshold is exceeded AND the change is significant.
    """
    if base is None or cand is None:
        return None
    base, cand = Fraction(base), Fraction(cand)
    delta = cand - base
    pct = _dec(delta / abs(base) * 100) if base else None
    pct = None if pct is None else pct.quantize(Decimal("0.01"), context=WIDE)
    status, shown, interval = "info", None, None
    if rule is not None:
        shown = " / ".join(f"{lvl} {t.text}" for lvl, t in (("warn", rule.warn), ("fail", rule.fail)) if t)
        if not comparable:
            status = "not-comparable"
        elif pairs is not None:
            status, interval = _paired_status(rule, pairs, noise)
        elif rule.fail and rule.fail.exceeded(base, delta):
            status = "fail"
        elif rule.warn and rule.warn.exceeded(base, delta):
            status = "warn"
        else:
            status = "pass"
    return Row(metric, _fmt(base), _fmt(cand), _fmt(delta), None if pct is None else f"{pct:+f}%", shown, status,
               interval)


def _paired_status(rule: MetricRule, pairs: tuple[list[float], list[float]],
                   noise: Mapping[str, Any] | None = None) -> tuple[str, str | None]:
    """`noise`: stats.paired's run_sd, the run-level uncertainty of a stored baseline (calibration, rounds). With
    it, a change whose interval reaches past a threshold is `inconclusive` even when the estimate is within it:
    against a stored baseline "no regression" is claimed only when the interval rules one out."""
    from .stats import decide, paired

    interval = None
    unsure = False
    for level, threshold in (("fail", rule.fail), ("warn", rule.warn)):
        if threshold is None:
            continue
        result = paired(*pairs, relative=threshold.relative, **(noise or {}))
        if result is None:
            return "inconclusive", "fewer than 2 prompts measured on both sides"
        interval = interval or result.text()
        exceeds, significant = decide(result, threshold)
        if exceeds:
            return (level if significant else "inconclusive"), result.text()
        reach = (result.high - 1) * 100 if result.relative else result.high
        unsure = unsure or bool(noise and noise.get("run_sd")) and reach > float(threshold.amount)
    return ("inconclusive" if unsure else "pass"), interval


def judge(base: Any, cand: Any, rules: Mapping[str, MetricRule],
          not_comparable: set[str], extra: list[Row], notes: list[str],
          pairs: Mapping[str, tuple[list[float], list[float]]] | None = None,
          noise: Mapping[str, Any] | None = None, noisy_times: Collection[str] = ()) -> SuiteVerdict:
    """Compare two aggregates (over the same prompts; anything with `.value(metric)`) metric by metric.

    Metrics in `not_comparable` (noisy ones measured in another environment) are shown, never failed;
    metrics in `pairs` are judged by the paired rule on their per-prompt values.
    """
    rows = list(extra)
    notes = list(notes)
    for metric in METRICS:
        row = compare_metric(metric, base.value(metric), cand.value(metric), rules.get(metric),
                             metric not in not_comparable, (pairs or {}).get(metric),
                             noise if metric in noisy_times else None)
        if row is not None:
            rows.append(row)
        elif metric in rules and metric in LEVER_NEEDS and not any(r.metric == metric for r in extra):
            side = "either side" if base.value(metric) is None and cand.value(metric) is None else \
                "the baseline" if base.value(metric) is None else "this run"
            notes.append(f"threshold on {metric} not applied: {side} has no {metric} "
                         f"({LEVER_NEEDS.get(metric, 'nothing was measured for it')})")
    return SuiteVerdict(status=worst(r.status for r in rows), rows=tuple(rows), notes=tuple(notes))


LEVER_NEEDS = {"cache_hit_ratio": "the server reported no cached tokens",
               "cacheable_prefix_share": "the suite has no prefix_cache rule",
               "escalation_rate": "the suite is not routed", "cost_per_resolved": "no quality rule or nothing resolved"}


def error_limit(rate: Fraction | Decimal, limit: Decimal) -> Row | None:
    """A fail row when the share of failed requests is above the suite's max_error_rate."""
    if Fraction(rate) <= Fraction(limit):
        return None
    return Row("error_rate", None, _fmt(rate), None, None, f"max_error_rate {_fmt(limit)}", "fail")


def worst(statuses: Any) -> str:
    """The most severe of pass/warn/fail (other row statuses never fail a suite)."""
    level = "pass"
    for status in statuses:
        if ORDER.get(status, 0) > ORDER[level]:
            level = status
    return level
