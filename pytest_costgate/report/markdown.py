"""The PR cost diff as GitHub-flavoured Markdown, rendered by a Jinja2 template (user-overridable)."""
from __future__ import annotations

import hashlib
import re
import time
from decimal import Decimal
from pathlib import Path
from typing import Any, Sequence

import jinja2

from .. import __version__
from ..document import Document, SuiteEntry, Summary
from ..errors import TemplateError
from ..verdict import Row
from ..escape import markdown_cell as cell
from ..redact import redact
from ..watchdog import MAX_OUTPUT, WATCHDOG, RenderTimeout, limited_environment, render_timeout
from .terminal import money, number, signed_money

MARKER_PREFIX = "<!-- costgate-comment"
GITHUB_LIMIT = 65_536
STATUS = {"inconclusive": "❔ inconclusive", "pass": "✅ pass", "warn": "⚠️ warn", "fail": "❌ fail", "new": "🆕 new", "no-baseline": "➖ no baseline",
          "removed": "🗑️ removed", "error": "💥 error"}
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


def code(value: object) -> str:
    """A name in backticks when it is a plain identifier, else escaped text."""
    text = str(value)
    return f"`{text}`" if re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", text) else cell(text)


def _row(rows: Sequence[Row], metric: str) -> Row | None:
    return next((r for r in rows if r.metric == metric), None)


def _delta(row: Row | None, money_value: bool = False) -> str:
    if row is None or row.delta is None:
        return ""
    delta = Decimal(row.delta)
    shown = signed_money(delta) if money_value else f"{'+' if delta >= 0 else ''}{number(delta)}"
    return f"{shown} ({cell(row.delta_pct)})" if row.delta_pct else shown


def _latency(entry: SuiteEntry) -> str:
    e2e = entry.latency.get("e2e_ms")
    if not e2e:
        return "–"
    rows = entry.verdict.rows if entry.verdict else ()
    states = {r.status for r in rows if r.metric.startswith("latency")}
    label = ("not comparable" if "not-comparable" in states else "significant" if states & {"warn", "fail"}
             else "inconclusive" if "inconclusive" in states else "no significant change" if "pass" in states
             else "not gated")
    return f"{number(e2e.get('p50'))} / {number(e2e.get('p95'))} ms ({label})"


def context(report: Document, top_prompts: int = 10, notes: bool = True,
            gate: str | None = None) -> dict[str, Any]:
    """Everything the template shows, already formatted and escaped."""
    summary = report.summary
    suites, breaches, changes, templates, chart = [], [], [], [], []
    for name, entry in report.suites.items():
        rows, metrics = (entry.verdict.rows if entry.verdict else ()), entry.metrics
        cost, month = _row(rows, "cost_per_request"), _row(rows, "monthly_cost")
        base_cost = Decimal(cost.baseline) * 1000 if cost and cost.baseline is not None else None
        head_cost = metrics.cost_per_request * 1000 if metrics.cost_per_request else None
        suites.append({
            "name": cell(name), "status": STATUS.get(entry.status, cell(entry.status)),
            "model": cell(entry.model),
            "cost_1k": f"{money(base_cost)} → {money(head_cost)}" if base_cost is not None else money(head_cost),
            "monthly": money(metrics.monthly_cost), "monthly_delta": _delta(month, True) or "–",
            "input": f"{number(metrics.input_tokens_mean)} {_delta(_row(rows, 'input_tokens_mean'))}".strip(),
            "output": f"{number(metrics.output_tokens_mean)} {_delta(_row(rows, 'output_tokens_mean'))}".strip(),
            "latency": _latency(entry),
        })
        for r in rows:
            if r.status in ("warn", "fail", "inconclusive"):
                icon = {"fail": "❌", "warn": "⚠️", "inconclusive": "❔ not significant"}[r.status]
                change = r.delta_pct or r.delta or ""
                if r.interval:
                    change += f" (paired {r.interval})"
                breaches.append({"icon": icon, "suite": cell(name), "metric": code(r.metric),
                                 "baseline": cell(r.baseline or "–"), "candidate": cell(r.candidate),
                                 "delta": cell(change, 160), "threshold": cell(r.threshold or "")})
        for c in entry.prompt_changes[:top_prompts]:
            changes.append({"suite": cell(name), "id": cell(c.id),
                            "cost": signed_money(c.cost_delta * 1000) if c.cost_delta is not None else "–",
                            "input": f"{c.input_tokens_delta:+d}", "output": f"{c.output_tokens_delta:+d}"})
        if entry.baseline_template_hash and entry.baseline_template_hash != entry.template_hash:
            templates.append({"suite": cell(name), "before": code(entry.baseline_template_hash),
                              "after": code(entry.template_hash)})
        if metrics.monthly_cost is not None:
            base_month = Decimal(month.baseline) if month and month.baseline is not None else None
            chart.append((name, base_month, metrics.monthly_cost))
    for name in summary.removed_suites if summary else ():
        suites.append({"name": cell(name), "status": STATUS["removed"], "model": "", "cost_1k": "–", "monthly": "–",
                       "monthly_delta": "–", "input": "–", "output": "–", "latency": "–"})
    return {
        "marker": marker(gate or report.config), "headline": headline(summary), "suites": suites,
        "breaches": breaches, "changes": changes, "templates": templates, "chart": _chart(chart),
        "notes": [f"**{cell(n)}**: {cell(note, 300)}" for n, e in report.suites.items()
                  for note in (e.verdict.notes if e.verdict else ())] if notes else [],
        "environment": cell(", ".join(f"{k} {v}" for k, v in report.environment.items()), 200),
        "prices": cell(" ".join(p for p in (report.price_source, report.price_date) if p) or "not stated"),
        "baseline": cell(((summary.baseline_git_sha if summary else None) or "unknown")[:12]), "version": __version__,
    }


def headline(summary: Summary | None) -> str:
    """Infracost-style first line: the monthly change, or why there is none."""
    if summary is None or summary.monthly_delta is None:
        total = summary.monthly_cost if summary else None
        return f"Monthly estimate {money(total)} (no baseline to compare with)" if total else "No cost estimate"
    delta, base = summary.monthly_delta, summary.baseline_monthly_cost or Decimal(0)
    if delta.quantize(Decimal("0.01")) == 0:
        return f"Monthly estimate unchanged at {money(summary.monthly_cost)}"
    pct = f" ({delta / base * 100:+.1f}%)" if base else ""
    word, icon = ("increased", "📈") if delta > 0 else ("decreased", "📉")
    return f"Monthly estimate {word} by {money(abs(delta))}{pct} {icon}"


def _chart(rows: list[tuple[str, Decimal | None, Decimal]]) -> str | None:
    if not rows:
        return None
    labels, values = [], []
    for name, base, head in rows:
        safe = re.sub(r"[^\w .:-]", "_", name)[:30]
        if base is not None:
            labels.append(f'"{safe} (base)"')
            values.append(f"{base:.2f}")
        labels.append(f'"{safe} (head)"')
        values.append(f"{head:.2f}")
    return ("xychart-beta\n    title \"Monthly cost per suite (USD)\"\n"
            f"    x-axis [{', '.join(labels)}]\n    y-axis \"USD / month\"\n    bar [{', '.join(values)}]")


def first_error(log: str) -> str:
    """The line of a gate's output that says why it could not run."""
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    for prefix in ("ERROR:", "costgate: error:", "costgate: ERROR:", "INTERNALERROR>", "E "):
        for line in lines:
            if line.startswith(prefix):
                return line
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
                body = tpl.render(**ctx)
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
