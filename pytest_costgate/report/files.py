"""Files a run leaves: JSON report, Markdown diff, GitHub step summary, baseline (all atomic)."""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from ..config.specs import Config
from ..gate.update import update_baseline
from ..judge.summary import removed_suites, summary
from ..safety.errors import CostgateError
from ..safety.redact import redact
from ..store.document import Document, SuiteEntry
from ..store.stamp import document
from ..store.write import write_json_atomic, write_text_atomic
from .markdown import render_markdown


def write_outputs(config: Config, baseline: Document | None, suites: Mapping[str, SuiteEntry], update: bool,
                  report: Path | None, markdown: Path | None = None, template: Path | None = None,
                  benchmark: Path | None = None, partial: bool = False,
                  shard: tuple[int, int] | None = None) -> tuple[list[str], bool]:
    """Write what was asked for; returns the lines to print and whether every requested output was written."""
    lines: list[str] = []
    ok = True
    ordered = {s.name: suites[s.name] for s in config.suites if s.name in suites}
    if shard is not None:  # a CI matrix job: its part, unjudged, for `costgate merge`
        doc = document(config, ordered, "partial", shard=shard)
        ok &= _write(report, lines, f"partial report (shard {shard[0]}/{shard[1]})",  # type: ignore[arg-type]
                     lambda: write_json_atomic(report, doc))  # type: ignore[arg-type]
        return lines, ok
    removed = removed_suites((s.name for s in config.suites), baseline)
    doc = document(config, ordered, "report", summary(ordered, baseline, removed))
    if report is not None:
        ok &= _write(report, lines, "report", lambda: write_json_atomic(report, doc))
    if benchmark is not None and ordered:
        from .benchmark_json import benchmark_document

        ok &= _write(benchmark, lines, "pytest-benchmark JSON", lambda: write_json_atomic(benchmark, benchmark_document(doc)))
    if ordered and (markdown is not None or os.environ.get("GITHUB_STEP_SUMMARY")):
        ok &= write_markdown(doc, markdown, template, lines)
    if update:
        if not ordered:
            lines.append("costgate: no suite finished; the baseline was left as it was")
        else:
            done = update_baseline(config, ordered, partial)
            lines += done.lines
            ok &= done.ok
    return lines, ok


def write_markdown(doc: Document, path: Path | None, template: Path | None, lines: list[str]) -> bool:
    """Render the diff to `path` and append it to $GITHUB_STEP_SUMMARY when that is set."""
    try:
        body = render_markdown(doc, template)
    except CostgateError as exc:
        lines.append(f"costgate: ERROR: could not render the Markdown diff: {exc}")
        return False
    ok = True
    if path is not None:
        ok &= _write(path, lines, "markdown", lambda: write_text_atomic(path, body))
    summary_file = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary_file:
        try:
            with open(summary_file, "a", encoding="utf-8", errors="backslashreplace") as handle:
                handle.write(redact(body) + "\n")
        except OSError as exc:
            lines.append(f"costgate: ERROR: could not append to GITHUB_STEP_SUMMARY ({summary_file}): {exc}")
            ok = False
    return ok


def _write(path: Path, lines: list[str], what: str, write: object) -> bool:
    try:
        write()  # type: ignore[operator]
    except (OSError, ValueError) as exc:
        lines.append(f"costgate: ERROR: could not write the {what} to {path}: {exc}")
        return False
    lines.append(f"costgate: wrote {what} {path}")
    return True
