"""One suite end to end, without pytest: prompts -> render -> tokens -> replay -> price -> verdict."""
from __future__ import annotations

import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Mapping

from .backends import Request, create_backend
from .baseline import comparable, decimal_text, environment
from .config import Config, SuiteSpec
from .errors import BaselineError
from .measure import PromptResult, aggregate, replay, subset, tokens_only
from .pricing import describe
from .prompts import PromptSet, load_prompt_set
from .render import PromptRenderer
from .thresholds import METRICS, MetricRule
from .tokens import TokenCounter, load_counter
from .verdict import Row, SuiteVerdict, error_limit, judge

NOISY_COST = ("cost_per_request", "monthly_cost")


@dataclass(frozen=True)
class Prepared:
    """A suite ready to replay: its prompt set rendered and counted."""

    prompt_set: PromptSet
    renderer: PromptRenderer
    counter: TokenCounter
    rendered: list[Any]
    counts: list[int]

    def references(self) -> dict[str, str]:
        return {r.id: r.reference for r in self.prompt_set.records if r.reference is not None}

    def requests(self, spec: SuiteSpec) -> list[tuple[Request, int, Decimal]]:
        return [(Request(r.id, prompt, spec.params), n, r.weight)
                for r, prompt, n in zip(self.prompt_set.records, self.rendered, self.counts)]


def prepare(spec: SuiteSpec) -> Prepared:
    """Load, render and count a suite's prompts (no model needed)."""
    prompt_set = load_prompt_set(spec.prompts)
    renderer = PromptRenderer(spec.template)
    counter = load_counter(spec.model.tokenizer)
    rendered = [renderer.render(record) for record in prompt_set.records]
    return Prepared(prompt_set, renderer, counter, rendered, count_inputs(counter, rendered))


def run_suite(config: Config, spec: SuiteSpec, baseline: dict[str, Any] | None, tokens_only_mode: bool,
              deadline: float | None = None) -> dict[str, Any]:
    """Measure one suite and judge it against the baseline; returns its costgate/1 suite entry."""
    prep = prepare(spec)
    base_suite = (baseline or {}).get("suites", {}).get(spec.name)
    base_results = parse_results(base_suite, config.baseline, spec.name)
    price = spec.model.pricing
    mode = "tokens-only" if tokens_only_mode or spec.tokens_only else "replay"
    load_s = wall_s = 0.0
    if mode == "tokens-only":
        results = [
            tokens_only(r.id, r.weight, n, base_results.get(r.id),
                        prep.counter.count(r.reference) if r.reference is not None else None, price)
            for r, n in zip(prep.prompt_set.records, prep.counts)
        ]
        fingerprint = {**environment(), "backend": spec.model.backend, "mode": mode}
    else:
        started = time.perf_counter()
        backend = create_backend(spec.model)
        load_s = time.perf_counter() - started
        try:
            results, wall_s = replay(backend, prep.requests(spec), prep.counter, price, spec.warmup, spec.repeats,
                                     suite_deadline(spec, started, deadline))
            fingerprint = {**environment(), **backend.fingerprint(), "mode": mode}
        finally:
            backend.close()
    entry = make_entry(spec, prep, results, mode, fingerprint, load_s, wall_s)
    verdict = judge_suite(config, spec, results, base_suite, base_results, baseline is not None, entry,
                          prep.references())
    entry["verdict"] = verdict.to_json()
    entry["baseline_template_hash"] = (base_suite or {}).get("template_hash")
    entry["prompt_changes"] = prompt_changes(results, base_results)
    return entry


def suite_deadline(spec: SuiteSpec, started: float, deadline: float | None) -> float | None:
    """The earlier of the run's deadline and the suite's own time budget."""
    if spec.time_budget_s is None:
        return deadline
    own = started + float(spec.time_budget_s)
    return own if deadline is None else min(deadline, own)


def make_entry(spec: SuiteSpec, prep: Prepared, results: list[PromptResult], mode: str, fingerprint: dict[str, str],
               load_s: float, wall_s: float) -> dict[str, Any]:
    """A suite's costgate/1 entry before judging: what was measured, where, with which templates and prices."""
    metrics = aggregate(results, spec.requests_per_month)
    latency = metrics.pop("latency")
    measured = {r.id for r in results}
    return {
        "model": spec.model.name, "backend": spec.model.backend, "mode": mode,
        "template_hash": prep.renderer.hash,
        "prompt_set": {"path": spec.prompts.name, "sha256": prep.prompt_set.sha256},
        "tokenizer": prep.counter.name, "pricing": describe(spec.model.pricing),
        "requests_per_month": None if spec.requests_per_month is None else str(spec.requests_per_month),
        "fingerprint": fingerprint, "load_s": round(load_s, 4), "wall_s": round(wall_s, 4),
        "metrics": {k: (decimal_text(v) if isinstance(v, Decimal) else v) for k, v in metrics.items()},
        "latency": latency,
        "errors": _distinct(r.error for r in results if r.error),
        "repeats": spec.repeats,
        "unmeasured": [r.id for r in prep.prompt_set.records if r.id not in measured],
        "prompts": {r.id: r.to_json() for r in results},
    }


def rejudge(config: Config, spec: SuiteSpec, entry: dict[str, Any], base_suite: dict[str, Any], source: str,
            references: dict[str, str]) -> dict[str, Any]:
    """Judge an already measured suite entry against another entry (a live baseline)."""
    results = list(parse_results(entry, "head", spec.name).values())
    base_results = parse_results(base_suite, source, spec.name)
    verdict = judge_suite(config, spec, results, base_suite, base_results, True, entry, references)
    return {**entry, "verdict": verdict.to_json(), "baseline_template_hash": base_suite.get("template_hash"),
            "prompt_changes": prompt_changes(results, base_results), "baseline_source": source}


def prompt_changes(results: list[PromptResult], base: dict[str, PromptResult], keep: int = 20) -> list[dict[str, Any]]:
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
            changes.append({"id": r.id, "cost_delta": None if cost is None else decimal_text(cost),
                            "input_tokens_delta": tokens_in, "output_tokens_delta": tokens_out})
    changes.sort(key=lambda c: (Decimal(c["cost_delta"] or 0), c["input_tokens_delta"] + c["output_tokens_delta"]),
                 reverse=True)
    return changes[:keep]


def judge_suite(config: Config, spec: SuiteSpec, results: list[PromptResult], base_suite: dict[str, Any] | None,
                base_results: dict[str, PromptResult], have_baseline: bool, entry: dict[str, Any],
                references: dict[str, str] | None = None) -> SuiteVerdict:
    """The suite's verdict: error limit always; thresholds over the prompts both sides share."""
    extra = []
    notes: list[str] = list(_distinct((r.note for r in results if r.note), keep=3))
    if entry["unmeasured"]:
        measured = len(results)
        total = measured + len(entry["unmeasured"])
        if measured == 0:
            notes.append(f"time budget reached before any of the {total} prompts was measured; raise the budget")
            extra.append(Row("time_budget", None, "0", None, None, "at least one prompt", "fail"))
        else:
            notes.append(f"time budget reached: {measured} of {total} prompts measured; "
                         + ("failing as on_time_budget says" if config.on_time_budget == "fail" else "judged on those"))
            if config.on_time_budget == "fail":
                extra.append(Row("time_budget", None, f"{measured}", None, None, "all prompts", "fail"))
    metrics = entry["metrics"]
    limit_row = error_limit(Decimal(metrics["error_rate"]), spec.max_error_rate)
    if limit_row is not None:
        extra.append(limit_row)
    if metrics["errors"]:
        notes.append(f"{metrics['errors']} of {metrics['n']} requests failed (max_error_rate "
                     f"{spec.max_error_rate}); first error: {entry['errors'][0]}")
    if spec.quality is not None and entry["mode"] == "replay":
        from .quality import quality_rows

        rows, quality_notes = quality_rows(spec.quality, results, base_results, references or {})
        extra += rows
        notes += quality_notes
    if base_suite is None:
        if not have_baseline:
            status = "fail" if config.on_missing_baseline == "fail" else "no-baseline"
            if status == "fail":
                notes.append(f"no baseline at {config.baseline} and on_missing_baseline is 'fail'")
        else:
            notes.append("new suite: not in the baseline")
            status = "new"
        return SuiteVerdict(status="fail" if extra else status, rows=tuple(extra), notes=tuple(notes))
    return compare_suite(base_suite, base_results, results, entry, spec.thresholds, extra, notes)


def compare_suite(base_suite: dict[str, Any], base_results: dict[str, PromptResult], results: list[PromptResult],
                  entry: dict[str, Any], rules: Mapping[str, MetricRule], extra: list[Row],
                  notes: list[str]) -> SuiteVerdict:
    """Judge a suite entry against its baseline entry over the prompts both have."""
    ours = {r.id for r in results}
    common = ours & set(base_results)
    added, removed = sorted(ours - common), sorted(set(base_results) - common - set(entry.get("unmeasured", ())))
    if added:
        notes.append(f"{len(added)} prompt(s) new since the baseline, not compared: {_ids(added)}")
    if removed:
        notes.append(f"{len(removed)} prompt(s) gone since the baseline, not compared: {_ids(removed)}")
    if base_suite.get("template_hash") != entry["template_hash"]:
        notes.append(f"template changed ({base_suite.get('template_hash')} → {entry['template_hash']})")
    if base_suite.get("pricing") != entry["pricing"]:
        notes.append(f"prices changed ({base_suite.get('pricing')} → {entry['pricing']})")

    def month(suite: dict[str, Any]) -> Decimal | None:
        return None if suite.get("requests_per_month") is None else Decimal(suite["requests_per_month"])

    base_agg = aggregate(subset(list(base_results.values()), common), month(base_suite))
    cand_agg = aggregate(subset(results, common), month(entry))
    same_env, differ = comparable(base_suite.get("fingerprint"), entry["fingerprint"])
    noisy = {m for m, (_, is_noisy) in METRICS.items() if is_noisy}
    if (entry.get("pricing") or {}).get("kind") == "gpu":
        noisy |= set(NOISY_COST)
    not_comparable = set() if same_env else noisy
    if not same_env and any(m in rules for m in noisy):
        notes.append(f"latency not comparable with the baseline (environment differs in: {', '.join(differ)}); "
                     "shown, not gated")
    return judge(base_agg, cand_agg, rules, not_comparable, extra, notes, _pairs(noisy, base_results, results, common))


def _pairs(noisy: set[str], base: dict[str, PromptResult], results: list[PromptResult],
           common: set[str]) -> dict[str, tuple[list[float], list[float]]]:
    """Per-prompt values of each noisy metric, base and head in the same prompt order."""
    head = {r.id: r for r in results}
    ids = sorted(i for i in common if base[i].error is None and head[i].error is None)
    source = {"latency_p50": "e2e_ms", "latency_p95": "e2e_ms", "cost_per_request": "cost", "monthly_cost": "cost"}
    out = {}
    for metric in noisy:
        field = source[metric]
        values = [(getattr(base[i], field), getattr(head[i], field)) for i in ids]
        values = [(float(b), float(h)) for b, h in values if b is not None and h is not None]
        out[metric] = ([b for b, _ in values], [h for _, h in values])
    return out


def count_inputs(counter: TokenCounter, rendered: list[Any]) -> list[int]:
    """Input tokens per rendered prompt, batching plain texts through the encoder at once."""
    texts = [(i, p) for i, p in enumerate(rendered) if isinstance(p, str)]
    counts = [0] * len(rendered)
    for (i, _), n in zip(texts, counter.count_many([p for _, p in texts])):
        counts[i] = n
    for i, prompt in enumerate(rendered):
        if not isinstance(prompt, str):
            counts[i] = counter.count_messages(prompt)
    return counts


def parse_results(suite: dict[str, Any] | None, source: Any, name: str) -> dict[str, PromptResult]:
    """The baseline's per-prompt records of a suite; a damaged entry is a BaselineError."""
    if not suite:
        return {}
    try:
        return {pid: PromptResult.from_json(pid, data) for pid, data in suite["prompts"].items()}
    except (KeyError, TypeError, AttributeError, ArithmeticError, ValueError) as exc:
        raise BaselineError(f"{source}: suite '{name}' is damaged ({type(exc).__name__}: {exc}). "
                            "Restore the file from git or re-create it with --costgate-update-baseline.") from None


def _distinct(errors: Any, keep: int = 5) -> list[str]:
    out: list[str] = []
    for error in errors:
        if error not in out:
            out.append(error)
        if len(out) == keep:
            break
    return out


def _ids(ids: list[str], keep: int = 10) -> str:
    shown = ", ".join(ids[:keep])
    return shown + (f" and {len(ids) - keep} more" if len(ids) > keep else "")
