"""Metric catalogue and threshold syntax: `+5%` (relative), `+$200`, `+50`, `+20ms` (absolute)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from fractions import Fraction

from .yamlsrc import plain_number

# metric -> (unit of an absolute threshold, noisy?). Noisy metrics are judged statistically.
METRICS: dict[str, tuple[str, bool]] = {
    "cost_per_request": ("$", False),
    "monthly_cost": ("$", False),
    "input_tokens_mean": ("tokens", False),
    "input_tokens_total": ("tokens", False),
    "output_tokens_mean": ("tokens", False),
    "output_tokens_total": ("tokens", False),
    "reasoning_tokens_mean": ("tokens", False),
    "latency_p50": ("ms", True),
    "latency_p95": ("ms", True),
    "error_rate": ("pp", False),
    "cache_hit_ratio": ("pp-drop", False),  # a drop is the regression: thresholds are '-10%' (points)
    "cacheable_prefix_share": ("pp-drop", False),
    "escalation_rate": ("pp", False),
    "cost_per_resolved": ("$", False),
}
DROP = frozenset(m for m, (unit, _) in METRICS.items() if unit == "pp-drop")
LEVELS = ("warn", "fail")

_SYNTAX = re.compile(r"^\+\s*(?P<dollar>\$)?\s*(?P<num>[0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]+)?|[0-9][0-9_]*(?:\.[0-9]+)?"
                     r"|\.[0-9]+)\s*(?P<unit>%|ms|tokens?)?$")


@dataclass(frozen=True)
class Threshold:
    """How much a metric may grow before a level is reached."""

    relative: bool
    amount: Decimal
    text: str
    drop: bool = False  # the metric regresses by falling (cache share): the fall is what is limited

    def exceeded(self, base: Decimal | Fraction | None, delta: Decimal | Fraction) -> bool:
        """True when the growth `delta` from `base` (for a drop metric: the fall) is strictly larger than allowed
        (compared exactly)."""
        change, amount = (-Fraction(delta) if self.drop else Fraction(delta)), Fraction(self.amount)
        if self.relative:
            if base is None or base == 0:
                return change > 0
            return change / abs(Fraction(base)) * 100 > amount
        return change > amount


@dataclass(frozen=True)
class MetricRule:
    """The warn and fail thresholds of one metric."""

    warn: Threshold | None = None
    fail: Threshold | None = None


def threshold_help(metric: str) -> str:
    unit = METRICS[metric][0]
    if unit == "pp-drop":
        return "write the largest fall allowed, in percentage points: '-10%'"
    absolute = {"$": "'+$200'", "tokens": "'+50'", "ms": "'+20ms'", "pp": "'+1%' (percentage points)"}[unit]
    if unit == "pp":
        return f"write {absolute}"
    return f"write a relative '+5%' or an absolute {absolute}"


def parse_threshold(metric: str, value: object) -> Threshold:
    """Parse one threshold for `metric`; raises ValueError with the accepted syntax."""
    unit = METRICS[metric][0]
    text = str(value).strip() if isinstance(value, (str, int, float)) and not isinstance(value, bool) else None
    if unit == "pp-drop":
        drop = re.fullmatch(r"-?\s*([0-9]{1,3}(?:\.[0-9]+)?)\s*%", text or "")
        if not drop or Decimal(drop[1]) > 100:
            raise ValueError(f"{value!r} is not a threshold: {threshold_help(metric)}")
        amount = Decimal(drop[1])
        return Threshold(relative=False, amount=amount / 100, text=f"-{amount}pp", drop=True)
    if text is not None and not text.startswith("+"):
        text = "+" + text
    match = _SYNTAX.match(text) if text else None
    if not match:
        if text and re.search(r"[0-9],[0-9]", text):
            raise ValueError(f"{value!r}: write decimals with a dot ('+1.5%'); a comma only groups thousands "
                             "('+$1,500')")
        raise ValueError(f"{value!r} is not a threshold: {threshold_help(metric)}")
    try:
        amount = plain_number(match["num"])
    except (InvalidOperation, ValueError) as exc:  # pragma: no cover - the regex admits only digits
        raise ValueError(f"{value!r} is not a number") from exc
    sign, suffix = match["dollar"], match["unit"]
    if unit == "pp":
        if sign or suffix not in ("%", None):
            raise ValueError(f"{value!r}: error_rate thresholds are percentage points; {threshold_help(metric)}")
        return Threshold(relative=False, amount=amount / 100, text=f"+{amount}pp")
    if suffix == "%":
        if sign:
            raise ValueError(f"{value!r} mixes '$' and '%'; {threshold_help(metric)}")
        return Threshold(relative=True, amount=amount, text=f"+{amount}%")
    if sign and unit != "$":
        raise ValueError(f"{value!r}: a dollar amount does not fit {metric}; {threshold_help(metric)}")
    if suffix == "ms" and unit != "ms" or suffix and suffix.startswith("token") and unit != "tokens":
        raise ValueError(f"{value!r}: unit '{suffix}' does not fit {metric}; {threshold_help(metric)}")
    if unit == "$" and not sign:
        raise ValueError(f"{value!r}: write money with a dollar sign, e.g. '+${amount}', or '+{amount}%'")
    shown = {"$": f"+${amount}", "tokens": f"+{amount}", "ms": f"+{amount}ms"}[unit]
    return Threshold(relative=False, amount=amount, text=shown)
