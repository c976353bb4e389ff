"""The cost-lever settings of a suite (config.py reads the rest): the prefix-cache rule, the absolute budgets,
the routes of a routed suite and the machine-speed calibration bound; each parsed from its YAML node with
located errors."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from .specs import Budgets, GpuPrice, ModelSpec, PrefixCache, TokenPrice
from .yamlsrc import CommaError, Key, Reader, plain_number

BUDGETS = frozenset({"input_tokens_max", "output_tokens_max", "cost_per_request_max", "latency_p95_max"})

def routes_of(models: Mapping[str, ModelSpec]) -> Mapping[str, tuple[str, TokenPrice | GpuPrice | None]]:
    """What a router may answer with, to the models: entry that prices it: the entry's name, and the API model
    id it sets (`model:` of an openai backend), which a server reports back (maybe as a dated snapshot,
    'gpt-4o-mini-2024-07-18', matched in measure.route)."""
    out: dict[str, tuple[str, TokenPrice | GpuPrice | None]] = {}
    for name, spec in models.items():
        api = spec.options.get("model")
        if isinstance(api, str) and api and api not in models:
            out.setdefault(api, (name, spec.pricing))
    out.update({name: (name, spec.pricing) for name, spec in models.items()})
    return MappingProxyType(out)


CALIBRATED = ("onnx", "genai")  # models computed on this machine: its speed is theirs (not a server's, not a sleep's)
DEFAULT_MAX_FACTOR = Decimal("1.25")


def calibration_bound(r: Reader, key: Key) -> Decimal | None:
    """`calibration: off`, `on`, or `{max_factor: 1.25}` (runner speed differing more: latency not comparable)."""
    value = r.value(key)
    if value is False or value == "off":
        return None
    if value is True or value == "on":
        return DEFAULT_MAX_FACTOR
    r.mapping(key, {"max_factor"}, required=("max_factor",))
    return r.number(key + ("max_factor",), Decimal("1.01"), maximum=Decimal(10))


def prefix_cache(r: Reader, key: Key) -> PrefixCache:
    node = r.mapping(key, {"min_tokens", "block"})
    values = {k: int(r.number(key + (k,), Decimal(1), integer=True, maximum=Decimal(10**7))) for k in node}
    return PrefixCache(**values)


def merged_budgets(r: Reader, key: Key, node: Mapping[str, Any], defaults: Mapping[str, Any]) -> Budgets:
    """The defaults' budgets with the suite's on top, limit by limit (as thresholds merge)."""
    merged = Budgets()
    for where in ((("defaults", "budgets"),) if "budgets" in defaults else ()) + \
            ((key + ("budgets",),) if "budgets" in node else ()):
        own = budgets(r, where)
        merged = replace(merged, **{f: getattr(own, f) for f in BUDGETS if getattr(own, f) is not None})
    return merged


def budgets(r: Reader, key: Key) -> Budgets:
    node = r.mapping(key, BUDGETS)
    values: dict[str, Any] = {}
    for name in node:
        raw = r.value(key + (name,))
        text = str(raw).strip() if isinstance(raw, (str, int, float)) and not isinstance(raw, bool) else ""
        unit = {"cost_per_request_max": "$", "latency_p95_max": "ms"}.get(name, "")
        number = text.removeprefix("$") if unit == "$" else text.removesuffix("ms").strip() if unit == "ms" else text
        try:
            amount = plain_number(number)
            if not amount.is_finite() or amount <= 0 or amount > Decimal(10**9):
                raise ValueError
        except CommaError as exc:
            raise r.fail(key + (name,), f"{exc}.") from None
        except (ArithmeticError, ValueError):
            example = {"$": "'$0.002'", "ms": "'800ms'"}.get(unit, "4000")
            raise r.fail(key + (name,), f"{raw!r} is not a budget: write a positive number such as {example}.") from None
        if unit == "$" and not text.startswith("$"):
            raise r.fail(key + (name,), f"write money with a dollar sign, e.g. '${number}'.")
        if not unit and amount != amount.to_integral_value():
            raise r.fail(key + (name,), f"a token budget is a whole number of tokens, got {raw!r}.")
        values[name] = int(amount) if not unit else amount
    return Budgets(**values)
