"""Numbers as people read them: money as money, tokens as tokens, percentages with one decimal.

Rounding is half-up everywhere ($78.125 shows as $78.13, as an invoice would), and a pair of values that
differ is never shown as equal: cost per 1k requests gets as many places as it takes to tell $0.0213
from $0.0245.
"""
from __future__ import annotations

import decimal
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import Any

WIDE = decimal.Context(prec=80, Emax=10**6, Emin=-(10**6), rounding=ROUND_HALF_UP)
CENT = Decimal("0.01")
DASH = "–"


def to_decimal(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    if isinstance(value, Fraction):
        return WIDE.divide(Decimal(value.numerator), Decimal(value.denominator))
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value))
    except decimal.InvalidOperation:
        return None
    return number if number.is_finite() else None


def _round(value: Decimal, places: int) -> Decimal:
    return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP, context=WIDE)


def _places_for(value: Decimal, significant: int) -> int:
    """Decimal places that keep `significant` digits of a value below 1 (2 at least: cents)."""
    if value == 0 or abs(value) >= 1:
        return 2
    return max(2, significant - 1 - value.adjusted())


def money(value: Any, places: int | None = None, significant: int = 3) -> str:
    """$1,234.57 (half-up); below $1, `significant` digits ($0.000343); fixed `places` when given."""
    amount = to_decimal(value)
    if amount is None:
        return DASH
    digits = places if places is not None else _places_for(amount, significant)
    rounded = _round(amount, digits)
    text = f"{abs(rounded):,.{digits}f}"
    if places is None and digits > 2:  # $0.00003125, not $0.0000312500
        text = text.rstrip("0")
        text += "0" * max(0, 2 - len(text.partition(".")[2]))
    return f"{'-' if rounded < 0 else ''}${text}"


def signed_money(value: Any, places: int | None = None) -> str:
    """+$64.74 / -$3.10; a change smaller than a cent keeps two significant digits (+$0.0042), so a real change
    never reads +$0.00."""
    amount = to_decimal(value)
    if amount is None:
        return DASH
    if places is None and amount != 0 and abs(amount) < CENT / 2:
        text = money(amount, significant=2)
    else:
        text = money(amount, 2 if places is None else places)
    return text if text.startswith("-") else "+" + text


def money_pair(base: Any, head: Any, significant: int = 3) -> tuple[str, str]:
    """Two amounts with places enough (up to 12) that different values read differently."""
    b, h = to_decimal(base), to_decimal(head)
    if b is None or h is None:
        return money(b, significant=significant), money(h, significant=significant)
    places = max(_places_for(b, significant), _places_for(h, significant))
    while b != h and _round(b, places) == _round(h, places) and places < 12:
        places += 1
    return money(b, places), money(h, places)


def percent(delta: Any, base: Any) -> str:
    """+14.1% (one decimal, half-up); '+<0.1%' for a real change that small; '' without a base."""
    d, b = to_decimal(delta), to_decimal(base)
    if d is None or b is None or b == 0:
        return ""
    value = WIDE.divide(d * 100, abs(b))
    shown = _round(value, 1)
    if shown == 0 and value != 0:
        return "+<0.1%" if value > 0 else "-<0.1%"
    return f"{'+' if shown >= 0 else ''}{shown:,.1f}%"


def tokens(value: Any, places: int = 1) -> str:
    """44.1 tokens; whole numbers without places; thousands separated."""
    amount = to_decimal(value)
    if amount is None:
        return DASH
    rounded = _round(amount, places)
    if rounded == rounded.to_integral_value():
        return f"{rounded:,.0f}"
    return f"{rounded:,.{places}f}"


def signed_tokens(value: Any, places: int = 1) -> str:
    amount = to_decimal(value)
    if amount is None:
        return DASH
    if amount != 0 and _round(amount, places) == 0:  # a real change never reads as none
        places = _places_for(amount, 2)
    text = tokens(amount, places)
    return text if text.startswith("-") or amount == 0 else "+" + text


def count(value: Any) -> str:
    amount = to_decimal(value)
    return DASH if amount is None else f"{_round(amount, 0):,.0f}"


SHARES = frozenset({"error_rate", "cache_hit_ratio", "cacheable_prefix_share", "escalation_rate"})
PER_1K = {"cost_per_request": " / 1k req", "cost_per_resolved": " / 1k resolved"}  # shown per 1,000 requests


def metric_value(metric: str, value: Any) -> str:
    """A verdict row's value in its unit: money per 1k requests, monthly dollars, tokens, ms or a share."""
    amount = to_decimal(value)
    if amount is None:
        return DASH
    if metric in PER_1K:
        return money(amount * 1000) + PER_1K[metric]
    if metric == "cost_per_request_max":  # all the digits a budget's limit may have: over it never reads equal
        return money(amount, significant=12) + " / req"
    if metric == "monthly_cost":
        return money(amount, 2)
    if metric.endswith("_tokens_mean"):
        return tokens(amount)
    if metric.endswith("_tokens_total") or metric.endswith("_tokens_max") or metric in ("n", "errors"):
        return count(amount)
    if metric.startswith("latency") or metric.endswith("_ms"):
        return f"{tokens(amount)} ms"
    if metric in SHARES or metric.startswith("quality"):
        return f"{tokens(amount * 100)}%"
    return tokens(amount, 4)


def metric_pair(metric: str, base: Any, head: Any) -> tuple[str, str]:
    """A row's baseline and candidate, distinguishable when they differ."""
    if metric in PER_1K:
        b, h = to_decimal(base), to_decimal(head)
        if b is not None and h is not None:
            pb, ph = money_pair(b * 1000, h * 1000)
            return pb + PER_1K[metric], ph + PER_1K[metric]
    return metric_value(metric, base), metric_value(metric, head)


def metric_delta(metric: str, delta: Any) -> str:
    amount = to_decimal(delta)
    if amount is None:
        return DASH
    if metric in PER_1K:
        return signed_money(amount * 1000) + PER_1K[metric]
    if metric == "monthly_cost":
        return signed_money(amount)
    if metric in SHARES:  # a change of a share is in percentage points
        text = tokens(amount * 100)
        return (text if text.startswith("-") else "+" + text) + " pp"
    text = metric_value(metric, amount)
    return text if text.startswith("-") else "+" + text
