"""A measured suite judged against its baseline entry: what is compared, over which prompts, and why.

Token and cost means are compared over the prompts both sides answered; the error rate over the
prompts both sides sent. A server that died half-way therefore shows as errors, not as a token change.
"""
from __future__ import annotations

from decimal import Decimal
from typing import Iterable, Mapping, Sequence

from .aggregate import aggregate, subset
from .config import Config, SuiteSpec
from .document import PromptChange, PromptResult, SuiteEntry
from .environment import comparable
from .thresholds import METRICS, MetricRule
from .verdict import Row, SuiteVerdict, error_limit, judge

NOISY_COST = ("cost_per_request", "monthly_cost")


def judge_suite(config: Config, spec: SuiteSpec, results: Sequence[PromptResult], base: SuiteEntry | None,
                have_baseline: bool, entry: SuiteEntry, references: Mapping[str, str] | None = None) -> SuiteVerdict:
    """The suite's verdict: error limit always; thresholds over the prompts both sides share."""
    extra: list[Row] = []
    notes: list[str] = list(distinct((r.note for r in results if r.note), keep=3))
    reused = sum(1 for r in results if r.reused)
    if reused:
        notes.append(f"incremental replay: {len(results) - reused} of {len(results)} prompts replayed (changed or new), "
                     f"{reused} reused from the baseline (tokens and cost only, never latency)")
    if entry.unmeasured:
        measured, total = len(results), len(results) + len(entry.unmeasured)
        if measured == 0:
            notes.append(f"time budget reached before any of the {total} prompts was measured; raise the budget")
            extra.append(Row("time_budget", None, "0", None, None, "at least one prompt", "fail"))
        else:
            notes.append(f"time budget reached: {measured} of {total} prompts measured; "
                         + ("failing as on_time_budget says" if config.on_time_budget == "fail" else "judged on those"))
            if config.on_time_budget == "fail":
                extra.append(Row("time_budget", None, f"{measured}", None, None, "all prompts", "fail"))
    metrics = entry.metrics
    limit_row = error_limit(metrics.error_rate, spec.max_error_rate)
    if limit_row is not None:
        extra.append(limit_row)
    if metrics.errors:
        notes.append(f"{metrics.errors} of {metrics.n} requests failed (max_error_rate "
                     f"{spec.max_error_rate}); first error: {entry.errors[0] if entry.errors else 'unknown'}")
    if spec.quality is not None and entry.mode == "replay":
        from .quality import quality_rows

        fresh = [r for r in results if not r.reused]  # a reused output is the baseline's own: nothing to judge
        rows, quality_notes = quality_rows(spec.quality, fresh, base.prompts if base else {}, references or {})
        extra += rows
        notes += quality_notes
    if base is None:
        if not have_baseline:
            status = "fail" if config.on_missing_baseline == "fail" else "no-baseline"
            if status == "fail":
                notes.append(f"no baseline at {config.baseline} and on_missing_baseline is 'fail'")
        else:
            notes.append("new suite: not in the baseline")
            status = "new"
        return SuiteVerdict(status="fail" if any(r.status == "fail" for r in extra) else status, rows=tuple(extra),
                            notes=tuple(notes))
    return compare_suite(base, results, entry, spec.thresholds, extra, notes)


def compare_suite(base: SuiteEntry, results: Sequence[PromptResult], entry: SuiteEntry,
                  rules: Mapping[str, MetricRule], extra: list[Row], notes: list[str]) -> SuiteVerdict:
    """Judge a suite entry against its baseline entry over the prompts both have."""
    base_results = base.prompts
    head = {r.id: r for r in results}
    sent = set(head) & set(base_results)
    answered = {i for i in sent if head[i].error is None and base_results[i].error is None}
    added = sorted(set(head) - sent)
    removed = sorted(set(base_results) - sent - set(entry.unmeasured))
    if added:
        notes.append(f"{len(added)} prompt(s) new since the baseline, not compared: {ids_text(added)}")
    if removed:
        notes.append(f"{len(removed)} prompt(s) gone since the baseline, not compared: {ids_text(removed)}")
    failed_one_side = len(sent) - len(answered)
    if failed_one_side:
        notes.append(f"{failed_one_side} prompt(s) failed on one side or both: tokens and cost compared over the "
                     f"{len(answered)} both answered; errors judged by error_rate")
    if base.template_hash != entry.template_hash:
        notes.append(f"template changed ({base.template_hash} → {entry.template_hash})")
    if base.pricing != entry.pricing:
        notes.append(f"prices changed ({_price_text(base.pricing)} → {_price_text(entry.pricing)})")
    base_list = list(base_results.values())
    base_agg = aggregate(subset(base_list, answered), base.requests_per_month, subset(base_list, sent))
    cand_agg = aggregate(subset(results, answered), entry.requests_per_month, subset(results, sent))
    same_env, differ = comparable(base.fingerprint, entry.fingerprint)
    noisy = {m for m, (_, is_noisy) in METRICS.items() if is_noisy}
    if (entry.pricing or {}).get("kind") == "gpu":
        noisy |= set(NOISY_COST)
    not_comparable = set() if same_env else noisy
    if not same_env and any(m in rules for m in noisy):
        notes.append(f"latency not comparable with the baseline (environment differs in: {', '.join(differ)}); "
                     "shown, not gated")
    return judge(base_agg, cand_agg, rules, not_comparable, extra, notes,
                 _pairs(noisy, base_results, head, answered))


def _price_text(pricing: Mapping[str, str] | None) -> str:
    return "none" if not pricing else ", ".join(f"{k} {v}" for k, v in pricing.items())


def _pairs(noisy: set[str], base: Mapping[str, PromptResult], head: Mapping[str, PromptResult],
           common: set[str]) -> dict[str, tuple[list[float], list[float]]]:
    """Per-prompt values of each noisy metric, base and head in the same prompt order."""
    ids = sorted(i for i in common if not head[i].reused)  # a reused record was not timed now
    source = {"latency_p50": "e2e_ms", "latency_p95": "e2e_ms", "cost_per_request": "cost", "monthly_cost": "cost"}
    out = {}
    for metric in noisy:
        name = source[metric]
        values = [(getattr(base[i], name), getattr(head[i], name)) for i in ids]
        pairs = [(float(b), float(h)) for b, h in values if b is not None and h is not None]
        out[metric] = ([b for b, _ in pairs], [h for _, h in pairs])
    return out


def prompt_changes(results: Iterable[PromptResult], base: Mapping[str, PromptResult],
                   keep: int = 20) -> tuple[PromptChange, ...]:
    """The prompts whose cost per request grew most (then tokens), for the diff's details."""
    changes = []
    for r in results:
        b = base.get(r.id)
        if b is None or r.error or b.error:
            continue
        cost = (r.cost - b.cost) if r.cost is not None and b.cost is not None else None
        tokens_in = (r.input_tokens or 0) - (b.input_tokens or 0)
        tokens_out = (r.output_tokens or 0) - (b.output_tokens or 0)
        if cost or tokens_in or tokens_out:
            changes.append(PromptChange(r.id, cost, tokens_in, tokens_out))
    changes.sort(key=lambda c: (c.cost_delta or Decimal(0), c.input_tokens_delta + c.output_tokens_delta),
                 reverse=True)
    return tuple(changes[:keep])


def distinct(items: Iterable[str], keep: int = 5) -> list[str]:
    out: list[str] = []
    for item in items:
        if item not in out:
            out.append(item)
        if len(out) == keep:
            break
    return out


def ids_text(ids: list[str], keep: int = 10) -> str:
    shown = ", ".join(i if len(i) <= 60 else i[:59] + "…" for i in ids[:keep])
    return shown + (f" and {len(ids) - keep} more" if len(ids) > keep else "")
