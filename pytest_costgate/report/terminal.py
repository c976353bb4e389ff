"""The terminal summary table and a suite's breach table, as plain lines."""
from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from ..store.document import Document, SuiteEntry
from . import numbers
from .notes import note_lines

ICON = {"pass": "PASS", "warn": "WARN", "fail": "FAIL", "new": "NEW", "no-baseline": "NO BASELINE",
        "error": "ERROR"}


def money(value: Any, cents: bool = True) -> str:
    """$1,234.57 for monthly figures (half-up); per-request costs (cents=False) keep 6 significant digits."""
    return numbers.money(value, 2 if cents else None, significant=6).replace(numbers.DASH, "-")


def signed_money(value: Any) -> str:
    return numbers.signed_money(value).replace(numbers.DASH, "-")


def number(value: Any, places: int = 1) -> str:
    return numbers.tokens(value, places).replace(numbers.DASH, "-")


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows)]
    fmt = "  ".join(f"{{:{'<' if i == 0 else '>'}{w}}}" for i, w in enumerate(widths))
    lines = [fmt.format(*header), "  ".join("-" * w for w in widths)]
    lines += [fmt.format(*row) for row in rows]
    return lines


def breach_lines(name: str, entry: SuiteEntry) -> list[str]:
    """The failure text of a suite's item: a breach table and the notes, no traceback."""
    verdict = entry.verdict
    if verdict is None:
        return [f"costgate suite '{name}' not judged"]
    rows = [r for r in verdict.rows if r.status in ("fail", "warn", "inconclusive")]
    lines = [f"costgate suite '{name}' {verdict.status.upper()}:"]
    if rows:
        lines += table(["metric", "baseline", "candidate", "change", "threshold", "level"],
                       [[r.metric, *_pair(r), _change(r), r.threshold or "-", r.status] for r in rows])
        lines += [f"{r.metric}: {'measured' if r.metric.endswith('_max') else 'paired change'} {r.interval}"
                  for r in rows if r.interval]
    lines += [f"note: {note}" for note in note_lines(entry)]
    return lines


def _pair(row: Any) -> list[str]:
    base, head = numbers.metric_pair(row.metric, row.baseline, row.candidate)
    return [base.replace(numbers.DASH, "-"), head.replace(numbers.DASH, "-")]


def _change(row: Any) -> str:
    if row.delta is None:
        return "-"
    pct = numbers.percent(row.delta, row.baseline)
    return numbers.metric_delta(row.metric, row.delta) + (f" ({pct})" if pct else "")


def summary_lines(suites: Mapping[str, SuiteEntry], baseline: Document | None, errors: Mapping[str, str],
                  baseline_path: Any = None, removed: tuple[str, ...] = (), shown: Collection[str] = (),
                  updating: bool = False) -> list[str]:
    """The session's cost table: one row per suite, then warnings, breaches and notes. Suites in `shown` had
    their breach table or error printed by pytest already (their item's failure): one line points there."""
    from ..judge.summary import summary
    from .drivers import driver, monthly_change

    base_suites = baseline.suites if baseline else {}
    rows = []
    for name, entry in suites.items():
        metrics = entry.metrics
        base = base_suites.get(name)
        month, base_month = metrics.monthly_cost, (base.metrics.monthly_cost if base else None)
        delta = monthly_change(entry, month - base_month if month is not None and base_month is not None else None)
        p95 = entry.latency.get("e2e_ms") or {}
        rows.append([name, ICON.get(entry.status, entry.status),
                     entry.mode, money(metrics.cost_per_request, cents=False), money(month),
                     signed_money(delta), number(metrics.input_tokens_mean), number(metrics.output_tokens_mean),
                     number(p95.get("p95")) if p95 else "-", f"{metrics.errors}/{metrics.n}"])
    for name in errors:
        rows.append([name, "ERROR", "-", "-", "-", "-", "-", "-", "-", "-"])
    lines = table(["suite", "status", "mode", "cost/req", "monthly", "monthly delta", "in tok/req",
                   "out tok/req", "p95 ms", "errors"], rows)
    totals = summary(suites, baseline, removed)
    if totals.baseline_monthly_cost and totals.monthly_delta is not None:
        change, base_total = totals.monthly_delta, totals.baseline_monthly_cost
        lines.append(f"monthly estimate: {money(totals.monthly_cost)} ({signed_money(change)}, "
                     f"{numbers.percent(change, base_total)} vs baseline)")
    for name in removed:
        lines.append(f"{name}: in the baseline but no longer in the config (removed; not compared)")
    if baseline is None and suites and not updating:
        lines += ["", f"no baseline at {baseline_path}: these are current numbers only. Create it with "
                  "pytest --costgate --costgate-update-baseline and commit it."]
    for name, entry in suites.items():
        verdict = entry.verdict
        why = driver(entry, plain=True)
        if why:
            lines += ["", f"{name} {entry.status.upper()}: {why}" + (" (breach table above)" if name in shown else "")]
        elif name in shown:
            lines += ["", f"costgate suite '{name}' {entry.status.upper()}: see its failure above"]
        if name not in shown and verdict is not None and (verdict.status in ("warn", "fail") or note_lines(entry) or any(
                r.status == "inconclusive" for r in verdict.rows)):
            lines += [] if why else [""]
            lines += breach_lines(name, entry)
    for name, message in errors.items():
        if name in shown:
            lines += ["", f"costgate suite '{name}' ERROR: see its failure above"]
            continue
        text = str(message)
        lines += ["", *(text if text.startswith("costgate suite") else f"costgate suite '{name}' ERROR: {text}"
                        ).splitlines()]
    return lines
