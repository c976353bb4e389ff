"""Files a run leaves: JSON report, Markdown diff, GitHub step summary, baseline (all atomic)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..baseline import document, removed_suites, summary, write_json_atomic, write_text_atomic
from ..config import Config
from ..errors import CostgateError
from ..redact import redact
from .markdown import render_markdown


def write_outputs(config: Config, baseline: dict[str, Any] | None, suites: dict[str, Any], update: bool,
                  report: Path | None, markdown: Path | None = None, template: Path | None = None,
                  benchmark: Path | None = None) -> list[str]:
    """Write the JSON report, the Markdown diff (and step summary) and, when asked, the baseline."""
    lines = []
    ordered = {s.name: suites[s.name] for s in config.suites if s.name in suites}
    doc = document(config, ordered, summary(ordered, baseline, removed_suites(config, baseline)))
    if report is not None:
        lines.append(_write(report, doc, "report"))
    if benchmark is not None and ordered:
        from .benchmark_json import benchmark_document

        lines.append(_write(benchmark, benchmark_document(doc), "pytest-benchmark JSON"))
    if ordered and (markdown is not None or os.environ.get("GITHUB_STEP_SUMMARY")):
        lines += write_markdown(doc, markdown, template)
    if update:
        if not ordered:
            return lines + ["costgate: no suite finished; the baseline was left as it was"]
        kept = {name: entry for name, entry in ((baseline or {}).get("suites") or {}).items()
                if name not in ordered and any(s.name == name for s in config.suites)}
        per_run = ("verdict", "prompt_changes", "baseline_template_hash")
        stored = {**kept, **{name: {k: v for k, v in e.items() if k not in per_run} for name, e in ordered.items()}}
        stored = {s.name: stored[s.name] for s in config.suites if s.name in stored}
        lines.append(_write(config.baseline, document(config, stored), "baseline"))
        failing = [n for n, e in ordered.items() if e["metrics"]["errors"]]
        if failing:
            lines.append(f"costgate: warning: the baseline holds failed requests for {', '.join(failing)}")
    return lines


def write_markdown(doc: dict[str, Any], path: Path | None, template: Path | None) -> list[str]:
    """Render the diff to `path` and append it to $GITHUB_STEP_SUMMARY when that is set."""
    try:
        body = render_markdown(doc, template)
    except CostgateError as exc:
        return [f"costgate: could not render the Markdown diff: {exc}"]
    lines = []
    if path is not None:
        try:
            write_text_atomic(path, body)
            lines.append(f"costgate: wrote markdown {path}")
        except OSError as exc:
            lines.append(f"costgate: could not write the markdown to {path}: {exc}")
    summary_file = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary_file:
        try:
            with open(summary_file, "a", encoding="utf-8") as handle:
                handle.write(redact(body) + "\n")
        except OSError as exc:
            lines.append(f"costgate: could not append to GITHUB_STEP_SUMMARY ({summary_file}): {exc}")
    return lines


def _write(path: Path, doc: dict[str, Any], what: str) -> str:
    try:
        write_json_atomic(path, doc)
    except OSError as exc:
        return f"costgate: could not write the {what} to {path}: {exc}"
    return f"costgate: wrote {what} {path}"
