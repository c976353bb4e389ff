"""Why a suite moved, in words: the driver sentence of a failing or warning suite (the metrics that breached, the
input or lever behind them, the usage/price/traffic split) and its pieces. Markdown-escaped for the PR comment,
or plain for the terminal (escaped there when printed)."""
from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from ..safety.escape import markdown_cell as cell
from ..store.document import Attribution, SuiteEntry
from ..store.verdicts import Row
from .notes import price_change_text
from .numbers import SHARES, count, metric_delta, metric_pair, percent, signed_money, to_decimal


def code(value: object) -> str:
    """A name in backticks when it is a plain identifier or path, else escaped text."""
    text = str(value)
    return f"`{text}`" if re.fullmatch(r"[A-Za-z0-9_./-]{1,120}", text) and ".." not in text else cell(text)


LABEL = {"input_tokens_mean": "input tokens", "output_tokens_mean": "output tokens", "cost_per_request":
         "cost per request", "monthly_cost": "monthly cost", "latency_p50": "latency p50", "latency_p95":
         "latency p95", "error_rate": "error rate", "input_tokens_total": "input tokens in total",
         "output_tokens_total": "output tokens in total", "reasoning_tokens_mean": "reasoning tokens", "quality_exact_match": "exact match",
         "quality_similarity": "output similarity", "time_budget": "time budget",
         "cache_hit_ratio": "cache hit ratio", "cacheable_prefix_share": "cacheable prefix",
         "escalation_rate": "escalation rate", "cost_per_resolved": "cost per resolved request",
         "input_tokens_max": "input tokens budget", "output_tokens_max": "output tokens budget",
         "cost_per_request_max": "cost per request budget", "latency_p95_max": "latency p95 budget"}


def price_changes(before: Mapping[str, str] | None, after: Mapping[str, str] | None, esc: Any = cell) -> str:
    return esc(price_change_text(before, after), 300)


def _plain(text: object, limit: int = 200) -> str:
    """Text for the terminal, where escaping happens when the line is printed."""
    return str(text)[:limit]


def _metric_change(row: Row, esc: Any = cell) -> str:
    """'input tokens +8/request (+22.2%)', 'latency p95 +35.1 ms (+12.0%)', 'error rate 0% → 8.3%'."""
    label = LABEL.get(row.metric, esc(row.metric))
    if row.metric in SHARES or row.metric.startswith("quality") or row.delta is None:
        base, head = metric_pair(row.metric, row.baseline, row.candidate)
        shown = f"{label} {base} → {head}" if row.baseline is not None else f"{label} {head} ({esc(row.threshold)})"
        if row.interval and row.metric.endswith("_max"):
            shown += f", measured {esc(row.interval, 80)}"
        return shown
    pct = percent(row.delta, row.baseline)
    change = metric_delta(row.metric, row.delta)
    if row.metric.endswith("_tokens_mean"):
        change += "/request"
    shown = f"{label} {change}" + (f" ({pct})" if pct else "")
    if row.interval:
        shown += f", paired {esc(row.interval, 80)}"
    return shown


def _cache_change(row: Row, verdict: Any, esc: Any = cell) -> str:
    """'cacheable prefix 93.5% → 0%: the shared prefix now ends at line 1 of templates/support.j2'."""
    where = f"the shared prefix now ends at {verdict.prefix_end}" if verdict.prefix_end else None
    return _metric_change(row, esc) + (f": {esc(where, 200)}" if where and row.metric == "cacheable_prefix_share"
                                       else "")


def monthly_change(entry: SuiteEntry, stored_delta: Decimal | None) -> Decimal | None:
    """The monthly change as judged, over the prompts both sides answered (the verdict's row), rather than the
    stored totals' difference, which a failed request on one side would skew; the stored one without a row."""
    row = next((r for r in (entry.verdict.rows if entry.verdict else ()) if r.metric == "monthly_cost"), None)
    judged = to_decimal(row.delta) if row is not None else None
    return judged if judged is not None else stored_delta


def cause(a: Attribution | None, esc: Any = cell, name: Any = code) -> str:
    """What changed in the inputs, for 'after …'."""
    if a is None:
        return ""
    said = []
    files = [f"{name(f)} changed" for f in a.files_changed[:3]] + [f"{name(f)} was added" for f in a.files_added[:2]] \
        + [f"{name(f)} was removed" for f in a.files_removed[:2]]
    if files:
        said.append(", ".join(files))
    elif a.template_changed:
        said.append("the template changed")
    if a.prompt_set_changed:
        said.append("the prompt set changed")
    if a.base_model:
        said.append(f"the model changed from {esc(a.base_model, 80)}")
    for param, before, after in a.params_changed[:3]:
        said.append(param_change(param, before, after, esc))
    return (" after " + " and ".join(said)) if said else ""


def _param_value(text: str | None) -> str:
    if text is None:
        return "unset"
    return text[1:-1] if len(text) >= 2 and text[0] == text[-1] == '"' and '"' not in text[1:-1] else text


def param_change(param: str, before: str | None, after: str | None, esc: Any = cell) -> str:
    """'params.reasoning_effort low → high', 'params.max_tokens 120 → 512', 'params.tools changed'."""
    b, h = _param_value(before), _param_value(after)
    if len(b) > 40 or len(h) > 40:
        return f"params.{esc(param, 60)} changed"
    return f"params.{esc(param, 60)} {esc(b, 40)} → {esc(h, 40)}"


def driver(entry: SuiteEntry, plain: bool = False) -> str | None:
    """One sentence on why a failing or warning suite moved: the metrics that breached, the input that changed
    (a template file by name), and the cost change split into usage and price. Markdown-escaped, or `plain`
    for the terminal (escaped there when printed)."""
    esc, name = (_plain, _plain) if plain else (cell, code)
    verdict = entry.verdict
    if verdict is None or verdict.status not in ("fail", "warn"):
        return None
    level = verdict.status
    breached = [r for r in verdict.rows if r.status == level]
    a = entry.attribution
    tokens_rows = [r for r in breached if r.metric in ("input_tokens_mean", "output_tokens_mean")]
    cost_rows = [r for r in breached if r.metric in ("cost_per_request", "monthly_cost")]
    other = [r for r in breached if r not in tokens_rows and r not in cost_rows
             and r.metric not in ("input_tokens_total", "output_tokens_total")]
    # a lever that moved the cost: less input served from cache, more requests sent to a dearer model
    # (named as the cause when it breached its own threshold, or moved a point or more with no price change)
    levers = [r for r in verdict.rows if ((r.metric in ("cacheable_prefix_share", "cache_hit_ratio")
                                           and (to_decimal(r.delta) or Decimal(0)) < 0)
                                          or (r.metric == "escalation_rate" and (to_decimal(r.delta) or Decimal(0)) > 0))
              and (r.status in ("fail", "warn") or (abs(to_decimal(r.delta) or Decimal(0)) >= Decimal("0.01")
                                                    and not (a is not None and (a.price or a.volume))))]
    clauses = []
    if cost_rows and not tokens_rows and levers:
        other = [r for r in other if r not in levers]
        clauses.append(_metric_change(cost_rows[0], esc) + " as "
                       + " and ".join(_cache_change(r, verdict, esc) for r in levers[:2]))
    elif cost_rows and not tokens_rows and a is not None and a.usage:
        # the cost moved with usage: say which tokens moved most
        moved = [r for r in verdict.rows if r.metric in ("input_tokens_mean", "output_tokens_mean")
                 and r.delta not in (None, "0")]
        tokens_rows = sorted(moved, key=lambda r: -abs(to_decimal(r.delta_pct) or Decimal(0)))[:1]
    if clauses:
        pass  # said above
    elif tokens_rows:
        reasoning = next((r for r in verdict.rows if r.metric == "reasoning_tokens_mean" and r.baseline is not None
                          and (to_decimal(r.delta) or Decimal(0)) != 0), None)
        said = [_metric_change(r, esc) + (f" as reasoning tokens {' → '.join(metric_pair(reasoning.metric, reasoning.baseline, reasoning.candidate))}"
                                          if reasoning is not None and r.metric == "output_tokens_mean" else "")
                for r in tokens_rows]
        clauses.append(" and ".join(said) + cause(a, esc, name))
    elif cost_rows and a is not None and not a.price and not a.volume:
        clauses.append(_metric_change(cost_rows[0], esc) + cause(a, esc, name))
    if a is not None and a.price:
        clauses.append(f"{price_changes(a.base_pricing, entry.pricing, esc)}: {signed_money(a.price)}/month "
                       "at the same usage")
    if a is not None and a.volume and a.base_requests_per_month is not None:
        clauses.append(f"traffic {count(a.base_requests_per_month)} → {count(entry.requests_per_month)} "
                       f"requests/month: {signed_money(a.volume)}/month")
    clauses += [_cache_change(r, verdict, esc) if r.metric == "cacheable_prefix_share" else _metric_change(r, esc)
                for r in other]
    if not clauses and cost_rows:
        clauses.append(_metric_change(cost_rows[0], esc) + cause(a, esc, name))
    return "; ".join(clauses) or None
