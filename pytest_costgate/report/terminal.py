"""The terminal summary table and a suite's breach table, as plain lines."""
from __future__ import annotations

from decimal import Decimal
from typing import Any, Mapping

from ..document import Document, SuiteEntry

ICON = {"pass": "PASS", "warn": "WARN", "fail": "FAIL", "new": "NEW", "no-baseline": "NO BASELINE",
        "error": "ERROR"}


def money(value: Any, cents: bool = True) -> str:
    """$1,234.56 for monthly figures; per-request costs (cents=False) keep 6 significant digits."""
    if value is None:
        return "-"
    amount = Decimal(str(value))
    if cents or abs(amount) >= 1 or amount == 0:
        amount = amount.quantize(Decimal("0.01"))
        return f"{'-' if amount < 0 else ''}${abs(amount):,.2f}"
    return f"{'-' if amount < 0 else ''}${Decimal(f'{float(abs(amount)):.6g}'):f}"


def signed_money(value: Any) -> str:
    if value is None:
        return "-"
    amount = Decimal(str(value)).quantize(Decimal("0.01"))
    return ("+" if amount >= 0 else "") + money(amount)


def number(value: Any, places: int = 1) -> str:
    if value is None:
        return "-"
    amount = Decimal(str(value))
    return f"{amount:,.0f}" if amount == amount.to_integral_value() else f"{amount:,.{places}f}"


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
        lines += table(["metric", "baseline", "candidate", "delta", "threshold", "level"],
                       [[r.metric, r.baseline or "-", r.candidate or "-",
                         (r.delta or "-") + (f" ({r.delta_pct})" if r.delta_pct else ""),
                         r.threshold or "-", r.status] for r in rows])
        lines += [f"{r.metric}: paired change {r.interval}" for r in rows if r.interval]
    lines += [f"note: {note}" for note in verdict.notes]
    return lines


def summary_lines(suites: Mapping[str, SuiteEntry], baseline: Document | None, errors: Mapping[str, str],
                  baseline_path: Any = None, removed: tuple[str, ...] = ()) -> list[str]:
    """The session's cost table: one row per suite, then warnings, breaches and notes."""
    from ..baseline import summary

    base_suites = baseline.suites if baseline else {}
    rows = []
    for name, entry in suites.items():
        metrics = entry.metrics
        base = base_suites.get(name)
        month, base_month = metrics.monthly_cost, (base.metrics.monthly_cost if base else None)
        delta = month - base_month if month is not None and base_month is not None else None
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
                     f"{change / base_total * 100:+.1f}% vs baseline)")
    for name in removed:
        lines.append(f"{name}: in the baseline but no longer in the config (removed; not compared)")
    if baseline is None and suites:
        lines += ["", f"no baseline at {baseline_path}: these are current numbers only. Create it with "
                  "pytest --costgate --costgate-update-baseline and commit it."]
    for name, entry in suites.items():
        verdict = entry.verdict
        if verdict is not None and (verdict.status in ("warn", "fail") or verdict.notes or any(
                r.status == "inconclusive" for r in verdict.rows)):
            lines.append("")
            lines += breach_lines(name, entry)
    for name, message in errors.items():
        text = str(message)
        lines += ["", *(text if text.startswith("costgate suite") else f"costgate suite '{name}' ERROR: {text}"
                        ).splitlines()]
    return lines
