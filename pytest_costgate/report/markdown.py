"""The PR cost diff as GitHub-flavoured Markdown, rendered by a Jinja2 template (user-overridable)."""
from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import jinja2

from ..safety.errors import TemplateError
from ..safety.escape import markdown_cell as cell
from ..safety.redact import redact
from ..safety.sandbox import MAX_OUTPUT, WATCHDOG, RenderTimeout, bounded_render, limited_environment, render_timeout
from ..store.document import Document, SuiteEntry, Summary
from ..store.stamp import VERSION as __version__
from ..store.verdicts import Row
from .drivers import LABEL, cause, code, driver, monthly_change, price_changes
from .notes import note_lines
from .numbers import (
    metric_delta,
    metric_pair,
    money,
    money_pair,
    percent,
    signed_money,
    signed_tokens,
    to_decimal,
    tokens,
)

MARKER_PREFIX = "<!-- costgate-comment"
GITHUB_LIMIT = 65_536
STATUS = {"inconclusive": "❔ inconclusive", "pass": "✅ pass", "warn": "⚠️ warn", "fail": "❌ fail", "new": "🆕 new", "no-baseline": "➖ no baseline",
          "removed": "🗑️ removed", "error": "💥 error"}
ICON = {k: v.split(" ", 1)[0] for k, v in STATUS.items()}


def gate_id(value: object) -> str:
    """A gate id safe inside an HTML comment, and distinct for distinct ids: letters, digits and ._/- as they
    are, anything else (and a '-' after a '-') percent-encoded; a long id keeps its start and a hash."""
    text = str(value or "costgate")
    safe = re.sub(r"[^A-Za-z0-9._/-]|(?<=-)-", lambda m: "".join(f"%{b:02X}" for b in m.group().encode("utf-8",
                                                                                                    "surrogatepass")),
                  text)
    if len(safe) > 100:
        safe = safe[:60] + "~" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return safe


def marker(gate: object = None) -> str:
    """The hidden line that finds our sticky comment again; one per gate id."""
    return f"{MARKER_PREFIX}: {gate_id(gate)} -->"


MARKER = marker()



def _row(rows: Sequence[Row], metric: str) -> Row | None:
    return next((r for r in rows if r.metric == metric), None)




def _tokens_cell(row: Row | None, head: Any) -> str:
    """'36.1 → 44.1 (+8)', from the verdict row (its change is exact), or the current mean alone."""
    if row is None or row.baseline is None:
        return tokens(head)
    delta = to_decimal(row.delta) or Decimal(0)
    return tokens(head) if delta == 0 else f"{tokens(row.baseline)} → {tokens(head)} ({signed_tokens(delta)})"


def _latency(entry: SuiteEntry) -> dict[str, str] | None:
    e2e = entry.latency.get("e2e_ms")
    if not e2e:
        return None
    rows = entry.verdict.rows if entry.verdict else ()
    states = {r.status for r in rows if r.metric.startswith("latency") and not r.metric.endswith("_max")}
    budget = next((r.status for r in rows if r.metric == "latency_p95_max"), None)
    label = ("not comparable (another machine)" if "not-comparable" in states else "significant change"
             if states & {"warn", "fail"} else "change not significant" if "inconclusive" in states
             else "no significant change" if "pass" in states else "not gated")
    if budget is not None:
        label += {"fail": "; over the p95 budget", "inconclusive": "; p95 budget: not clearly over",
                  "pass": "; within the p95 budget"}.get(budget, "")
    ttft = entry.latency.get("ttft_ms")
    return {"p50": f"{tokens(e2e.get('p50'))} ms", "p95": f"{tokens(e2e.get('p95'))} ms",
            "ttft": f"{tokens(ttft.get('p50'))} ms" if ttft else "–", "verdict": label}


def context(report: Document, top_prompts: int = 10, notes: bool = True,
            gate: str | None = None) -> dict[str, Any]:
    """Everything the template shows, already formatted and escaped."""
    summary = report.summary
    suites, breaches, changes, inputs, latency, split, drivers, chart = [], [], [], [], [], [], [], []
    for name, entry in report.suites.items():
        rows, metrics = (entry.verdict.rows if entry.verdict else ()), entry.metrics
        a = entry.attribution
        month = _row(rows, "monthly_cost")
        cost = _row(rows, "cost_per_request")
        # the baseline's figures: to 12 places from the attribution (verdict rows keep 4 or 6 digits)
        base_month = a.base_monthly_cost if a is not None and a.base_monthly_cost is not None else \
            to_decimal(month.baseline) if month else None
        base_cost = a.base_cost_per_request if a is not None and a.base_cost_per_request is not None else \
            to_decimal(cost.baseline) if cost else None
        head_cost = metrics.cost_per_request
        if base_cost is not None and head_cost is not None:
            b, h = money_pair(base_cost * 1000, head_cost * 1000)
            cost_1k = f"{b} → {h}" if base_cost != head_cost else h
        else:
            cost_1k = money(None if head_cost is None else head_cost * 1000)
        if base_month is not None and metrics.monthly_cost is not None:
            b, h = money_pair(base_month, metrics.monthly_cost, 3)
            delta = monthly_change(entry, metrics.monthly_cost - base_month) or Decimal(0)
            pct = percent(delta, metrics.monthly_cost - delta)
            monthly = f"{b} → {h}" if delta else h
            monthly_delta = signed_money(delta) + (f" ({pct})" if pct else "") if delta else "no change"
        else:
            monthly, monthly_delta = money(metrics.monthly_cost, 2), "–"
        in_row, out_row = _row(rows, "input_tokens_mean"), _row(rows, "output_tokens_mean")
        suites.append({
            "name": cell(name), "status": STATUS.get(entry.status, cell(entry.status)), "model": cell(entry.model),
            "icon": ICON.get(entry.status, ""),
            "monthly": monthly, "monthly_delta": monthly_delta, "cost_1k": cost_1k,
            "input": _tokens_cell(in_row, metrics.input_tokens_mean),
            "output": _tokens_cell(out_row, metrics.output_tokens_mean) + (
                f" (reasoning {tokens(metrics.reasoning_tokens_mean)})" if metrics.reasoning_tokens_mean else ""),
        })
        why = driver(entry)
        if why:
            drivers.append({"suite": cell(name), "icon": "❌" if entry.status == "fail" else "⚠️", "text": why})
        if a is not None and base_month is not None and metrics.monthly_cost is not None and \
                metrics.monthly_cost != base_month:
            split.append({"suite": cell(name),
                          "usage": signed_money(a.usage) if a.usage is not None else "–",
                          "price": signed_money(a.price) if a.price is not None else "–",
                          "volume": signed_money(a.volume) if a.volume else "–",
                          "total": signed_money(metrics.monthly_cost - base_month),
                          "cause": cause(a).removeprefix(" after ") or "–"})
        for r in rows:
            if r.status in ("warn", "fail", "inconclusive"):
                icon = {"fail": "❌", "warn": "⚠️", "inconclusive": "❔"}[r.status]
                base, head = metric_pair(r.metric, r.baseline, r.candidate)
                change = metric_delta(r.metric, r.delta) if r.delta is not None else ""
                pct = percent(r.delta, r.baseline) if r.delta is not None else ""
                change += f" ({pct})" if pct else ""
                if r.status == "inconclusive":
                    change += " — not significant"
                if r.interval:
                    change += (f"measured {r.interval}" if r.metric.endswith("_max") else f", paired {r.interval}")
                breaches.append({"icon": icon, "suite": cell(name), "metric": LABEL.get(r.metric, code(r.metric)),
                                 "baseline": base if r.baseline is not None else "–", "candidate": head,
                                 "delta": cell(change, 200), "threshold": cell(r.threshold or "")})
        for c in entry.prompt_changes[:top_prompts]:
            changes.append({"suite": cell(name), "id": cell(c.id),
                            "cost": signed_money(c.cost_delta * 1000) if c.cost_delta is not None else "–",
                            "input": f"{c.input_tokens_delta:+,d}", "output": f"{c.output_tokens_delta:+,d}"})
        if a is not None:
            for label, files in (("changed", a.files_changed), ("added", a.files_added), ("removed", a.files_removed)):
                inputs += [{"suite": cell(name), "what": code(f), "how": label,
                            "hash": code(entry.template_files.get(f, "")) if label != "removed" else "–"}
                           for f in files]
            if a.template_changed and not (a.files_changed or a.files_added or a.files_removed):
                inputs.append({"suite": cell(name), "what": "template", "how": "changed",
                               "hash": f"{code(entry.baseline_template_hash)} → {code(entry.template_hash)}"})
            if a.prompt_set_changed:
                inputs.append({"suite": cell(name), "what": code(entry.prompt_set.get("path", "prompt set")),
                               "how": "changed", "hash": code(str(entry.prompt_set.get("sha256", ""))[:16])})
            if a.base_model:
                inputs.append({"suite": cell(name), "what": "model", "how": f"{cell(a.base_model)} → {cell(entry.model)}",
                               "hash": "–"})
            if a.base_pricing is not None:
                inputs.append({"suite": cell(name), "what": "prices", "how": price_changes(a.base_pricing,
                                                                                           entry.pricing), "hash": "–"})
        timing = _latency(entry)
        if timing:
            latency.append({"suite": cell(name), **timing})
        if metrics.monthly_cost is not None:
            chart.append((name, base_month, metrics.monthly_cost))
    for name in summary.removed_suites if summary else ():
        suites.append({"name": cell(name), "status": STATUS["removed"], "model": "", "icon": ICON["removed"], "monthly": "–",
                       "monthly_delta": "–", "cost_1k": "–", "input": "–", "output": "–"})
    return {
        "marker": marker(gate or report.config), "headline": headline(summary, report),
        "drivers": drivers, "suites": suites, "split": split, "breaches": breaches, "changes": changes,
        "inputs": inputs, "latency": latency, "chart": _chart(chart),
        "notes": [f"**{cell(n)}**: {cell(note, 300)}" for n, e in report.suites.items()
                  for note in note_lines(e, inputs_shown=e.attribution is not None)] if notes else [],
        "environment": cell(", ".join(f"{k} {v}" for k, v in report.environment.items() if k != "costgate"), 200),
        "prices": cell(" ".join(p for p in (report.price_source, report.price_date) if p) or "not stated"),
        "baseline": cell(((summary.baseline_git_sha if summary else None) or "unknown")[:12]), "version": __version__,
    }


def headline(summary: Summary | None, report: Document | None = None) -> str:
    """The verdict and the money, e.g. '❌ costgate: 1 of 2 suites failed — monthly +$64.74 (+14.5%)'."""
    statuses = [e.status for e in report.suites.values()] if report is not None else []
    total = len(statuses)
    suites = f"{total} suite{'s' if total != 1 else ''}"
    failed, warned = statuses.count("fail"), statuses.count("warn")
    errored = statuses.count("error")
    if report is None:
        verdict = "costgate"
    elif failed:
        verdict = f"❌ costgate: {failed} of {suites} failed"
    elif errored:
        verdict = f"💥 costgate: {errored} of {suites} could not be measured"
    elif warned:
        verdict = f"⚠️ costgate: {warned} of {suites} warned"
    elif statuses and all(s in ("no-baseline",) for s in statuses):
        verdict = f"➖ costgate: {suites}, no baseline to compare with"
    else:
        new = statuses.count("new")
        verdict = f"✅ costgate: {suites} passed" if total != 1 else "✅ costgate: 1 suite passed"
        verdict += f" ({new} new)" if new else ""
    if summary is None or summary.monthly_delta is None:
        current = summary.monthly_cost if summary else None
        money_part = f"monthly estimate {money(current, 2)}" if current else "no cost estimate"
    else:
        delta, base = summary.monthly_delta, summary.baseline_monthly_cost or Decimal(0)
        pct = percent(delta, base)
        if delta == 0:
            money_part = f"monthly unchanged at {money(summary.monthly_cost, 2)}"
        else:
            money_part = f"monthly {signed_money(delta)}" + (f" ({pct})" if pct else "")
    return f"{verdict} — {money_part}"


CHART_BASE, CHART_HEAD = "#afb8c1", "#0969da"


def _chart(rows: list[tuple[str, Decimal | None, Decimal]]) -> str | None:
    """Monthly cost per suite as horizontal bars from 0, the baseline (grey) over this run (blue) a row each.

    Mermaid's xychart draws every series at every category, overlapping: each category holds one value, the
    other series a zero, and the head series is drawn first so the grey baseline row covers its zero."""
    if not rows or all(base is None for _, base, _ in rows):
        return None
    labels, heads, bases = [], [], []
    for name, base, head in rows[:15]:
        safe = re.sub(r"[^\w .:-]", "_", name)[:40]
        if base is not None:
            labels.append(f'"{safe} · base"')
            heads.append("0")
            bases.append(_amount(base))
        labels.append(f'"{safe} · this PR"')
        heads.append(_amount(head))
        bases.append("0")
    top = max([Decimal(0), *(b for _, b, _ in rows[:15] if b is not None), *(h for _, _, h in rows[:15])])
    ceiling = _nice(top)
    init = ('%%{init: {"theme": "base", "xyChart": {"chartOrientation": "horizontal", "width": 760, "height": '
            f'{80 + 26 * len(labels)}}}, "themeVariables": {{"xyChart": {{"plotColorPalette": "{CHART_HEAD}, '
            f'{CHART_BASE}"}}}}}}}}%%')
    return (f"{init}\nxychart-beta\n    title \"Monthly cost per suite, USD (grey: baseline, blue: this PR)\"\n"
            f"    x-axis [{', '.join(labels)}]\n    y-axis \"USD / month\" 0 --> {ceiling}\n"
            f"    bar [{', '.join(heads)}]\n    bar [{', '.join(bases)}]")


def _amount(value: Decimal) -> str:
    return f"{_round_cents(value):f}"


def _round_cents(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def _nice(top: Decimal) -> str:
    """An axis end a little above the largest bar, on a round number."""
    if top <= 0:
        return "1"
    step = Decimal(10) ** (top.adjusted() - 1)
    return f"{((top * Decimal('1.05')) / step).to_integral_value(rounding='ROUND_CEILING') * step:f}"


def first_error(log: str) -> str:
    """The line of a gate's output that says why it could not run (with up to 3 lines that continue it)."""
    lines = [line.strip() for line in log.splitlines()]
    prefixes = ("ERROR:", "costgate: error:", "costgate: ERROR:", "INTERNALERROR>", "E ")
    for prefix in prefixes:
        for i, line in enumerate(lines):
            if line.startswith(prefix):
                more = []
                for extra in lines[i + 1: i + 4]:
                    if not extra or extra.startswith(prefixes) or extra.startswith(("===", "___", "---")):
                        break
                    more.append(extra)
                return " ".join([line, *more])
    lines = [line for line in lines if line]
    return lines[-1] if lines else "no output (the job may have been cancelled)"


def render_gate_error(log: str, gate: str | None = None) -> str:
    """The comment for a gate that could not run: never an empty table over a good comment."""
    return redact(f"{marker(gate)}\n## 💥 costgate could not run\n\nThe cost gate stopped before it could measure "
                  f"anything, so there is no cost diff for this commit. First error:\n\n> {cell(first_error(log), 500)}"
                  f"\n\nSee the job log for the rest. <sub>costgate {__version__}</sub>\n")


def render_markdown(report: Document, template: Path | None = None, limit: int = GITHUB_LIMIT,
                    gate: str | None = None) -> str:
    """The comment body, redacted; details are shortened first when the body would pass GitHub's limit."""
    # A user's template is a file a pull request can change: sandboxed and time-limited like prompt templates.
    env = limited_environment(jinja2.PackageLoader("pytest_costgate.report", "templates"))
    try:
        tpl = env.from_string(template.read_text(encoding="utf-8")) if template else env.get_template("comment.md.j2")
    except (OSError, UnicodeDecodeError, jinja2.TemplateError) as exc:
        raise TemplateError(f"{template}: cannot load the Markdown template: {exc}") from None
    attempts = [(10, True, None), (3, True, "showing the top 3 prompts per suite"),
                (0, True, "prompt details left out"), (0, False, "prompt details and notes left out")]
    for top, notes, cut in attempts:
        ctx = context(report, top, notes, gate)
        ctx["shortened"] = f"Details shortened to fit GitHub's {limit:,}-character limit: {cut}." if cut else None
        try:
            with WATCHDOG.watch() as job:
                job.deadline = time.monotonic() + 10 * render_timeout()
                body = bounded_render(tpl, ctx)
        except RenderTimeout:
            raise TemplateError(f"{template or 'comment.md.j2'}: rendering took over {10 * render_timeout():g}s; "
                                "simplify the template.") from None
        except Exception as exc:  # noqa: BLE001 - a user's template can raise anything (MemoryError included)
            raise TemplateError(f"{template or 'comment.md.j2'}: rendering failed: {type(exc).__name__}: "
                                f"{str(exc)[:300]}") from None
        if len(body) > MAX_OUTPUT:
            raise TemplateError(f"{template or 'comment.md.j2'}: renders {len(body):,} characters; a comment can't "
                                f"hold over {limit:,}.")
        body = redact(body)
        if not body.startswith(ctx["marker"]):  # a user's template may leave it out: ours is found by it
            body = f"{ctx['marker']}\n{body}"
        if len(body) <= limit:
            return body
    return body[: limit - 200] + f"\n\n_Cut at GitHub's {limit:,}-character limit._\n"
