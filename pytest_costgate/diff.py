"""Compare two saved reports (base, head) without a config, for `costgate diff`."""
from __future__ import annotations

from typing import Any

from .baseline import removed_suites_of, summary
from .config import DEFAULT_THRESHOLDS
from .gate import compare_suite, parse_results, prompt_changes


def diff_reports(base: dict[str, Any], head: dict[str, Any], base_name: str = "base") -> dict[str, Any]:
    """The head report re-judged against the base report with the default thresholds."""
    suites = {}
    for name, entry in head["suites"].items():
        entry = dict(entry)
        base_suite = base["suites"].get(name)
        results = list(parse_results(entry, "head report", name).values())
        if base_suite is None:
            verdict = {"status": "new", "rows": [], "notes": ["new suite: not in the base report"]}
            base_results = {}
        else:
            base_results = parse_results(base_suite, base_name, name)
            verdict = compare_suite(base_suite, base_results, results, entry, DEFAULT_THRESHOLDS, [], []).to_json()
        entry.update(verdict=verdict, prompt_changes=prompt_changes(results, base_results),
                     baseline_template_hash=(base_suite or {}).get("template_hash"))
        suites[name] = entry
    removed = removed_suites_of(set(head["suites"]), base)
    return {**head, "suites": suites, "summary": summary(suites, base, removed)}
