"""Absolute budgets: limits a suite must keep whatever its baseline says.

Token and cost budgets are judged on the exact per-request numbers and name the prompts over them. The latency
budget is judged on the measured p95 with a bootstrap interval over prompts: over budget only when the whole
interval lies above it, inconclusive when the estimate is over but the interval reaches below.
"""
from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from fractions import Fraction
from typing import Any

from ..config.specs import Budgets
from ..store.verdicts import Row
from .verdict import _fmt

KEEP = 5  # offending prompts named in a note


def _ids(pairs: Sequence[tuple[str, Any]], unit: str) -> str:
    worst = sorted(pairs, key=lambda p: -p[1])[:KEEP]
    shown = ", ".join(f"{pid if len(pid) <= 60 else pid[:59] + '…'} ({_show(v, unit)})" for pid, v in worst)
    return shown + (f" and {len(pairs) - KEEP} more" if len(pairs) > KEEP else "")


def _show(value: Any, unit: str) -> str:
    if unit == "$":
        return f"${_fmt(Fraction(value))}"
    return f"{value:,} tokens"


def budget_rows(budgets: Budgets, columns: Any, mode: str) -> tuple[list[Row], list[str]]:
    """Rows (one per budget set) and notes naming the prompts over a budget. `columns(name)` gives a per-prompt
    column of the suite's records, in one order."""
    rows: list[Row] = []
    notes: list[str] = []
    ids, errors = columns("id"), columns("error")
    for name, column, limit, unit in (("input_tokens_max", "input_tokens", budgets.input_tokens_max, "tokens"),
                                      ("output_tokens_max", "output_tokens", budgets.output_tokens_max, "tokens"),
                                      ("cost_per_request_max", "cost", budgets.cost_per_request_max, "$")):
        if limit is None:
            continue
        values = [(pid, v) for pid, v, e in zip(ids, columns(column), errors) if v is not None and e is None]
        if not values:
            continue
        over = [(pid, v) for pid, v in values if Fraction(v) > Fraction(limit)]
        highest = max(v for _, v in values)
        shown = f"${_fmt(Fraction(limit))}" if unit == "$" else f"{limit:,}"
        rows.append(Row(name, None, _fmt(Fraction(highest)), None, None, f"max {shown}", "fail" if over else "pass"))
        if over:
            notes.append(f"budget {name} {shown}: {len(over)} of {len(values)} requests over it: {_ids(over, unit)}")
    if budgets.latency_p95_max is not None and mode == "replay":
        from .stats import budget_status, quantile_interval

        timed = [v for v, e, reused in zip(columns("e2e_ms"), errors, columns("reused")) if e is None and not reused]
        result = quantile_interval(timed)
        status = budget_status(result, float(budgets.latency_p95_max))
        limit_text = f"max {_fmt(budgets.latency_p95_max)}ms"
        rows.append(Row("latency_p95_max", None, None if result is None else _fmt(Decimal(repr(result.estimate))),
                        None, None, limit_text, status,
                        "fewer than 2 requests timed" if result is None else result.text()))
    return rows, notes
