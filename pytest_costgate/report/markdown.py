"""The PR cost diff as GitHub-flavoured Markdown, rendered by a Jinja2 template (user-overridable)."""
from __future__ import annotations

import hashlib
import re
import time
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any, Mapping, Sequence

import jinja2

from .. import __version__
from ..attribution import price_change_text
from ..cache_share import PREFIX_NOTE
from ..document import Attribution, Document, SuiteEntry, Summary
from ..errors import TemplateError
from ..verdict import Row
from ..escape import markdown_cell as cell
from ..redact import redact
from ..watchdog import MAX_OUTPUT, WATCHDOG, RenderTimeout, limited_environment, render_timeout
from .numbers import (SHARES, count, metric_delta, metric_pair, money, money_pair, percent, signed_money,
                      signed_tokens, to_decimal, tokens)

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


def code(value: object) -> str:
    """A name in backticks when it is a plain identifier or path, else escaped text."""
    text = str(value)
    return f"`{text}`" if re.fullmatch(r"[A-Za-z0-9_./-]{1,120}", text) and ".." not in text else cell(text)


def _row(rows: Sequence[Row], metric: str) -> Row | None:
    return next((r for r in rows if r.metric == metric), None)


LABEL = {"input_tokens_mean": "input tokens", "output_tokens_mean": "output tokens", "cost_per_request":
         "cost per request", "monthly_cost": "monthly cost", "latency_p50": "latency p50", "latency_p95":
         "latency p95", "error_rate": "error rate", "input_tokens_total": "input tokens in total",
         "output_tokens_total": "output tokens in total", "quality_exact_match": "exact match",
         "quality_similarity": "output similarity", "time_budget": "time budget",
         "cache_hit_ratio": "cache hit ratio", "cacheable_prefix_share": "cacheable prefix",
         "escalation_rate": "escalation rate", "cost_per_resolved": "cost per resolved request",
         "input_tokens_max": "input tokens budget", "output_tokens_max": "output tokens budget",
         "cost_per_request_max": "cost per request budget", "latency_p95_max": "latency p95 budget"}


def _price_changes(before: Mapping[str, str] | None, after: Mapping[str, str] | None, esc: Any = cell) -> str:
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
    moved = next((n for n in verdict.notes if n.startswith(PREFIX_NOTE)), None)
    where = moved.replace("the prefix every prompt shares", "the shared prefix") if moved else None
    return _metric_change(row, esc) + (f": {esc(where, 200)}" if where and row.metric == "cacheable_prefix_share"
                                       else "")


def _cause(a: Attribution | None, esc: Any = cell, name: Any = code) -> str:
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
    return (" after " + " and ".join(said)) if said else ""


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
                                           and (to_decimal(r.delta) or 0) < 0)
                                          or (r.metric == "escalation_rate" and (to_decimal(r.delta) or 0) > 0))
              and (r.status in ("fail", "warn") or (abs(to_decimal(r.delta) or 0) >= Decimal("0.01")
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
        tokens_rows = sorted(moved, key=lambda r: -abs(to_decimal(r.delta_pct) or 0))[:1]
    if clauses:
        pass  # said above
    elif tokens_rows:
        clauses.append(" and ".join(_metric_change(r, esc) for r in tokens_rows) + _cause(a, esc, name))
    elif cost_rows and a is not None and not a.price and not a.volume:
        clauses.append(_metric_change(cost_rows[0], esc) + _cause(a, esc, name))
    if a is not None and a.price:
        clauses.append(f"{_price_changes(a.base_pricing, entry.pricing, esc)}: {signed_money(a.price)}/month "
                       "at the same usage")
    if a is not None and a.volume and a.base_requests_per_month is not None:
        clauses.append(f"traffic {count(a.base_requests_per_month)} → {count(entry.requests_per_month)} "
                       f"requests/month: {signed_money(a.volume)}/month")
    clauses += [_cache_change(r, verdict, esc) if r.metric == "cacheable_prefix_share" else _metric_change(r, esc)
                for r in other]
    if not clauses and cost_rows:
        clauses.append(_metric_change(cost_rows[0], esc) + _cause(a, esc, name))
    return "; ".join(clauses) or None


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
            delta = metrics.monthly_cost - base_month
            pct = percent(delta, base_month)
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
            "output": _tokens_cell(out_row, metrics.output_tokens_mean),
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
                          "cause": _cause(a).removeprefix(" after ") or "–"})
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
                inputs.append({"suite": cell(name), "what": "prices", "how": _price_changes(a.base_pricing,
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
                  for note in (e.verdict.notes if e.verdict else ())
                  if e.attribution is None or not note.startswith(SHOWN_ELSEWHERE)] if notes else [],
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


SHOWN_ELSEWHERE = ("template changed", "prices changed")  # the inputs table says these, by file and price
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
