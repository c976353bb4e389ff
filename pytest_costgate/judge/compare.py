"""A measured suite judged against its baseline entry: what is compared, over which prompts, and why.

Token and cost means are compared over the prompts both sides answered; the error rate over the
prompts both sides sent. A server that died half-way therefore shows as errors, not as a token change.
"""
from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import replace
from decimal import Decimal
from fractions import Fraction
from types import MappingProxyType
from typing import Any

from ..config.specs import Config, SuiteSpec
from ..config.thresholds import METRICS, MetricRule
from ..store.document import PromptChange, SuiteEntry, decimal_text
from ..store.records import PromptResult, Records
from ..store.verdicts import Levers, Row, SuiteVerdict
from .aggregate import aggregate, subset
from .comparable import comparable
from .verdict import _fmt, error_limit, judge

NOISY_COST = ("cost_per_request", "monthly_cost")


def judge_suite(config: Config, spec: SuiteSpec, results: Sequence[PromptResult] | Records, base: SuiteEntry | None,
                have_baseline: bool, entry: SuiteEntry, references: Mapping[str, str] | None = None) -> SuiteVerdict:
    """The suite's verdict: error limit always; thresholds over the prompts both sides share."""
    extra: list[Row] = []
    notes: list[str] = list(distinct((note for note in _column(results, "note") if note), keep=3))
    if entry.mode == "tokens-only":
        carried = [c for c in _column(results, "cached_tokens") if c]
        if spec.prefix_cache is not None and carried:
            notes.append("tokens-only: cached input priced as the prefix_cache rule projects it (cacheable tokens)")
        elif carried or any(_column(results, "cache_write_tokens")):
            notes.append("tokens-only: cache reads and writes carried per prompt from the baseline's server-reported "
                         "usage (as are output and reasoning tokens)")
    reused = sum(1 for flag in _column(results, "reused") if flag)
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
    if spec.budgets is not None:
        from .budgets import budget_rows

        rows, budget_notes = budget_rows(spec.budgets, lambda name: _column(results, name), entry.mode)
        extra += rows
        notes += budget_notes
    resolved: tuple[set[str] | None, set[str]] | None = None
    if spec.quality is not None and entry.mode == "replay":
        from .quality import quality_rows, resolved_sets

        fresh = [r for r in _objects(results) if not r.reused]  # a reused output is the baseline's own: nothing to judge
        rows, quality_notes = quality_rows(spec.quality, fresh, base.prompts if base else {}, references or {})
        extra += rows
        notes += quality_notes
        resolved = resolved_sets(spec.quality, results, base.prompts if base else None, references or {})
    if base is None:
        if not have_baseline:
            status = "fail" if config.on_missing_baseline == "fail" else "no-baseline"
            if status == "fail":
                notes.append(f"no baseline at {config.baseline} and on_missing_baseline is 'fail'")
        else:
            notes.append("new suite: not in the baseline")
            status = "new"
        alone = aggregate(results, entry.requests_per_month, default_model=entry.default_model)
        if resolved is not None:
            alone = replace(alone, cost_per_resolved=per_resolved(results, None, resolved[1]))
            if alone.cost_per_resolved is not None:
                extra.append(Row("cost_per_resolved", None, _fmt(alone.cost_per_resolved), None, None, None, "info"))
        return SuiteVerdict(status="fail" if any(r.status == "fail" for r in extra) else status, rows=tuple(extra),
                            notes=tuple(notes), levers=levers_of(None, alone))
    return compare_suite(base, results, entry, spec.thresholds, extra, notes, resolved, spec.calibration_max_factor)


def compare_suite(base: SuiteEntry, results: Sequence[PromptResult] | Records, entry: SuiteEntry,
                  rules: Mapping[str, MetricRule], extra: list[Row], notes: list[str],
                  resolved: tuple[set[str] | None, set[str]] | None = None,
                  max_factor: Decimal | None = None) -> SuiteVerdict:
    """Judge a suite entry against its baseline entry over the prompts both have. `resolved`: the baseline's and
    the candidate's prompts whose output passes the quality rule (for cost_per_resolved)."""
    base_results = base.prompts
    head_ids, base_ids = _column(results, "id"), list(base_results)
    # the usual case, the same prompt set on both sides: one set of ids, nothing added or removed
    head_set = set(head_ids)
    base_set = head_set if head_ids == base_ids else set(base_ids)
    sent = head_set if base_set is head_set else head_set & base_set
    failed = _failed(head_ids, _column(results, "error")) | _failed(base_ids, _column(base_results, "error"))
    answered = sent - failed if failed else sent
    added = sorted(head_set - sent) if len(sent) != len(head_set) else []
    removed = sorted(base_set - sent - set(entry.unmeasured)) if len(sent) != len(base_set) else []
    if added:
        notes.append(f"{len(added)} prompt(s) new since the baseline, not compared: {ids_text(added)}")
    if removed:
        notes.append(f"{len(removed)} prompt(s) gone since the baseline, not compared: {ids_text(removed)}")
    failed_one_side = len(sent) - len(answered)
    if failed_one_side:
        notes.append(f"{failed_one_side} prompt(s) failed on one side or both: tokens and cost compared over the "
                     f"{len(answered)} both answered; errors judged by error_rate")
    base_list = base_results if isinstance(base_results, Records) else list(base_results.values())
    default = entry.default_model or base.default_model

    def part(records: Any, ids: set[str], every: set[str]) -> Any:  # `ids` is a subset of `every`, the side's ids
        return records if len(ids) == len(every) else subset(records, ids)

    base_agg = aggregate(part(base_list, answered, base_set), base.requests_per_month, part(base_list, sent, base_set),
                         default)
    cand_agg = aggregate(part(results, answered, head_set), entry.requests_per_month, part(results, sent, head_set),
                         default)
    if resolved is not None and resolved[0] is not None:
        base_agg = replace(base_agg, cost_per_resolved=per_resolved(base_list, answered, resolved[0]))
        cand_agg = replace(cand_agg, cost_per_resolved=per_resolved(results, answered, resolved[1]))
        notes.append(f"resolved (output passes the quality rule): {len(resolved[0] & answered)} → "
                     f"{len(resolved[1] & answered)} of {len(answered)} requests")
        if not resolved[1] & answered and resolved[0] & answered and "cost_per_resolved" in rules:
            extra.append(Row("cost_per_resolved", _fmt(base_agg.cost_per_resolved), None, None, None,
                             "a request resolved", "fail"))
        elif any(c is None for side in (base_list, results) for pid, c in zip(_column(side, "id"), _column(side, "cost"))
                 if pid in answered):
            notes.append("cost per resolved request not computed: a request has no cost (no pricing for it)")
    same_env, differ = comparable(base.fingerprint, entry.fingerprint)
    noisy = {m for m, (_, is_noisy) in METRICS.items() if is_noisy}
    if (entry.pricing or {}).get("kind") == "gpu":
        noisy |= set(NOISY_COST)
    # with GPU pricing the cost per resolved request is time-priced too: shown, gated only in one environment
    not_comparable = set() if same_env else noisy | ({"cost_per_resolved"} & noisy_cost(entry))
    if not same_env and any(m in rules for m in noisy):
        notes.append(f"latency not comparable with the baseline (environment differs in: {', '.join(differ)}); "
                     "shown, not gated")
    pricing = entry.pricing or {}
    timed = {"latency_p50", "latency_p95"} | (set(NOISY_COST) if pricing.get("kind") == "gpu" and not (
        pricing.get("mode") == "configured" and pricing.get("latency_s")) else set())  # values that are times
    noise: dict[str, Any] = {}
    # a stored baseline only: a live replay (--costgate-against) pairs the two sides on one machine, prompt by prompt
    if timed & set(rules) - not_comparable and entry.mode == "replay" and "live" not in entry.fingerprint:
        noise, note, apart = runner_noise(base, entry, results, max_factor)
        if note:
            notes.append(note)
        if apart:
            not_comparable |= timed
    pairs = _pairs(noisy & set(rules), base_results, results, answered, timed,
                   noise.get("speed")) if noisy & set(rules) else {}
    noise.pop("speed", None)  # carried by the pairs themselves
    verdict = judge(base_agg, cand_agg, rules, not_comparable, extra, notes, pairs, noise, timed)
    return replace(verdict, template_changed=base.template_hash != entry.template_hash,
                   prices_changed=base.pricing != entry.pricing, levers=levers_of(base_agg, cand_agg))


def _lever_side(figures: Any) -> Levers:
    """The cost levers of one side's aggregate, as stored (12 places, as every decimal of a document)."""
    def dec(value: Fraction | None) -> Decimal | None:
        return None if value is None else Decimal(decimal_text(value))

    return Levers(cacheable_prefix_share=dec(figures.cacheable_prefix_share), cache_hit_ratio=dec(figures.cache_hit_ratio),
                  served=MappingProxyType({m: Decimal(decimal_text(share)) for m, share in figures.served.items()}),
                  escalation_rate=dec(figures.escalation_rate))


def levers_of(base: Any, cand: Any) -> tuple[Levers | None, Levers] | None:
    """The cost levers baseline -> candidate, when either side measured one (None: the suite has none)."""
    sides = [cand] if base is None else [base, cand]
    if all(s.cacheable_prefix_share is None and s.cache_hit_ratio is None and not s.served for s in sides):
        return None
    return (None if base is None else _lever_side(base)), _lever_side(cand)


TRUST = 0.5  # how much of the speed shift it measures the calibration is trusted to remove (see calibration.py)


def runner_noise(base: SuiteEntry, entry: SuiteEntry, results: Any, max_factor: Decimal | None
                 ) -> tuple[dict[str, Any], str | None, bool]:
    """What the paired rule must allow for beyond the prompts' own spread, a note saying it, and whether the
    runners differ too much to compare.

    With calibration on both sides: the head's times are divided by the runner's speed factor f ("speed",
    applied by _pairs), and the run-level uncertainty that remains is the factor's own (its bootstrap) plus
    (1 - TRUST) x |log f|: the further the runner was from the baseline's speed, the less a correction can be
    trusted. The baseline's rounds (repeats > 1) give a run-to-run spread too; the larger of the two counts."""
    from .calibration import speed

    parts: list[float] = []
    note = None
    noise: dict[str, Any] = {}
    if max_factor is not None:
        found = None
        if base.calibration is None:
            note = "latency judged without calibration: the baseline has no calibration timings (re-record it)"
        elif entry.calibration is None:
            note = ("latency judged without calibration: this run took no calibration timings (requests in flight "
                    "at once are not calibrated)")
        elif base.calibration.workload != entry.calibration.workload:
            note = "latency judged without calibration: the baseline's calibration workload is another version's"
        else:
            found = speed(base.calibration.ms, entry.calibration.ms)
            if found is None:
                note = ("latency judged without calibration: fewer than 5 usable calibration timings on a side "
                        "(one is taken per call; a batch is one call)")
        if found is not None:
            bound = float(max_factor)
            if found.low > bound or found.high < 1 / bound:  # surely another kind of runner, not noise
                return {}, (f"{found.text()}: outside calibration max_factor {max_factor}, so latency is not "
                            "comparable with the baseline (another kind of runner? re-record the baseline)"), True
            own = (math.log(found.high) - math.log(found.low)) / (2 * 1.96)
            parts.append(math.hypot(own, (1 - TRUST) * abs(math.log(found.factor))))
            noise["speed"] = found
            note = f"{found.text()}: head latencies divided by {found.factor:.2f}; the interval allows for the correction"
    spread = round_spread(base.prompts) if base.repeats > 1 else None  # rounds, not a live replay's pair of runs
    if spread is not None:
        sd, rounds = spread
        heads = [r for r in _column(results, "runs") if r]
        parts.append(sd * math.sqrt(1 / rounds + 1 / (max(1, min(heads)) if heads else 1)))
        note = ((note + "; ") if note else "") + (f"the baseline's {rounds} rounds differ by {sd:.1%} run to run: "
                                                  "the latency interval allows for it")
    if parts:
        noise["run_sd"] = max(parts)
    return noise, note, False


def round_spread(base: Any) -> tuple[float, int] | None:
    """(standard deviation of a whole round's mean log latency, rounds) over the baseline's prompts that ran
    every round; None with fewer than 2 rounds."""
    runs = [r for r, reused in zip(_column(base, "e2e_runs"), _column(base, "reused")) if r and not reused]
    if not runs:
        return None
    rounds = max(len(r) for r in runs)
    full = [r for r in runs if len(r) == rounds and all(v > 0 for v in r)]
    if rounds < 2 or len(full) < 2:
        return None
    means = [math.fsum(math.log(r[k]) for r in full) / len(full) for k in range(rounds)]
    centre = math.fsum(means) / rounds
    return math.sqrt(math.fsum((m - centre) ** 2 for m in means) / (rounds - 1)), rounds


def noisy_cost(entry: SuiteEntry) -> set[str]:
    return {"cost_per_resolved"} if (entry.pricing or {}).get("kind") == "gpu" else set()


def per_resolved(results: Any, ids: set[str] | None, done: set[str]) -> Fraction | None:
    """Σ weight x cost over the requests (those in `ids` when given) / Σ weight over those resolved: what one
    resolved request costs. None when no request resolved or a cost is missing."""
    total, count = Fraction(0), Fraction(0)
    for pid, weight, cost, error in zip(*(_column(results, n) for n in ("id", "weight", "cost", "error"))):
        if (ids is not None and pid not in ids) or (ids is None and error is not None):
            continue
        if cost is None:
            return None
        total += Fraction(weight) * Fraction(cost)
        if pid in done:
            count += Fraction(weight)
    return total / count if count else None


def _pairs(noisy: set[str], base: Mapping[str, PromptResult], results: Sequence[PromptResult] | Records,
           common: set[str], calibrated: Collection[str] = (), speed: Any = None
           ) -> dict[str, tuple[list[float], list[float]]]:
    """Per-prompt values of each noisy metric, base and head in the same prompt order. Metrics in `calibrated`
    (measured times): head values divided by the runner's `speed` factor (calibration.Speed)."""
    head_ids = _column(results, "id")
    reused = dict(zip(head_ids, _column(results, "reused")))
    ids = sorted(i for i in common if not reused[i])  # a reused record was not timed now
    source = {"latency_p50": "e2e_ms", "latency_p95": "e2e_ms", "cost_per_request": "cost", "monthly_cost": "cost"}
    out = {}
    for metric in noisy:
        name = source[metric]
        head = dict(zip(head_ids, _column(results, name)))
        old = dict(zip(base, _column(base, name)))
        values = [(old[i], head[i]) for i in ids]
        if metric in calibrated and speed is not None:  # head times at the baseline runner's speed
            values = [(b, None if h is None else float(h) / speed.factor) for b, h in values]
        pairs = [(float(b), float(h)) for b, h in values if b is not None and h is not None]
        out[metric] = ([b for b, _ in pairs], [h for _, h in pairs])
    return out


def _column(results: Any, name: str) -> list[Any]:
    if isinstance(results, Records):
        return list(results.column(name))
    if isinstance(results, Mapping):
        return [getattr(r, name) for r in results.values()]
    return [getattr(r, name) for r in results]


def _failed(ids: list[str], errors: list[Any]) -> set[str]:
    if errors.count(None) == len(errors):
        return set()
    return {pid for pid, error in zip(ids, errors) if error is not None}


def _objects(results: Any) -> list[PromptResult]:
    return list(results.values()) if isinstance(results, (Records, Mapping)) else list(results)


def prompt_changes(results: Iterable[PromptResult] | Records, base: Mapping[str, PromptResult],
                   keep: int = 20) -> tuple[PromptChange, ...]:
    """The prompts whose cost per request grew most (then tokens), for the diff's details."""
    names = ("id", "cost", "input_tokens", "output_tokens", "error")
    head, before = [_column(results, name) for name in names], [_column(base, name) for name in names]
    if head[0] == before[0]:  # the same prompts in the same order: compare them row by row
        if head[1:4] == before[1:4]:
            return ()  # nothing moved (the usual tokens-only run of an unchanged suite)
        pairs: Iterable[tuple[Any, ...]] = zip(zip(*head), zip(*before[1:]))
    else:
        old = {row[0]: row[1:] for row in zip(*before)}
        pairs = ((row, old.get(row[0])) for row in zip(*head))
    changes = []
    for (pid, cost, tokens_in, tokens_out, error), b in pairs:
        if b is None or error or b[3]:
            continue
        if cost == b[0] and tokens_in == b[1] and tokens_out == b[2]:
            continue
        delta = (cost - b[0]) if cost is not None and b[0] is not None else None
        d_in, d_out = (tokens_in or 0) - (b[1] or 0), (tokens_out or 0) - (b[2] or 0)
        if delta or d_in or d_out:
            changes.append(PromptChange(pid, delta, d_in, d_out))
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
