"""Compare two saved reports (base, head) without a config, for `costgate diff`."""
from __future__ import annotations

from dataclasses import replace
from types import MappingProxyType

from ..config.loader import DEFAULT_THRESHOLDS
from ..judge.attribution import attribute
from ..judge.compare import compare_suite, prompt_changes
from ..judge.summary import removed_suites, summary
from ..store.document import Document, PromptChange, SuiteEntry
from ..store.verdicts import SuiteVerdict


def diff_reports(base: Document, head: Document, base_name: str = "base") -> Document:
    """The head report re-judged against the base report with the default thresholds."""
    suites: dict[str, SuiteEntry] = {}
    for name, entry in head.suites.items():
        base_entry = base.suites.get(name)
        results = list(entry.prompts.values())
        if base_entry is None:
            verdict = SuiteVerdict("new", (), ("new suite: not in the base report",))
            changes: tuple[PromptChange, ...] = ()
        else:
            verdict = compare_suite(base_entry, results, entry, DEFAULT_THRESHOLDS, [], [])
            changes = prompt_changes(results, base_entry.prompts)
        suites[name] = replace(entry, verdict=verdict, prompt_changes=changes, baseline_source=base_name,
                               baseline_template_hash=base_entry.template_hash if base_entry else None,
                               attribution=attribute(entry, base_entry))
    removed = removed_suites(head.suites, base)
    return replace(head, kind="report", suites=MappingProxyType(suites), summary=summary(suites, base, removed))
