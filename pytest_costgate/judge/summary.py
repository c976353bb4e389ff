"""Run-level figures of a report: the overall status, the monthly estimate and its change, removed suites."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal

from ..store.document import Document, SuiteEntry, Summary
from .verdict import worst


def removed_suites(names: Iterable[str], baseline: Document | None) -> list[str]:
    """Suites the baseline has that are not among `names`."""
    wanted = set(names)
    return [name for name in (baseline.suites if baseline else {}) if name not in wanted]


def summary(suites: Mapping[str, SuiteEntry], baseline: Document | None, removed: Iterable[str]) -> Summary:
    """Run-level figures: overall status, the monthly estimate with its change, removed suites."""
    base = baseline.suites if baseline else {}
    cand_total = base_total = Decimal(0)
    compared = False
    for name, entry in suites.items():
        month = entry.metrics.monthly_cost
        base_entry = base.get(name)
        base_month = base_entry.metrics.monthly_cost if base_entry else None
        if month is not None:
            cand_total += month
        if month is not None and base_month is not None:
            base_total += base_month
            compared = True
    return Summary(
        status=worst(e.status for e in suites.values()), monthly_cost=cand_total,
        baseline_monthly_cost=base_total if compared else None,
        monthly_delta=cand_total - base_total if compared else None, removed_suites=tuple(removed),
        baseline_git_sha=baseline.git_sha if baseline else None,
        baseline_created=baseline.created if baseline else None)
