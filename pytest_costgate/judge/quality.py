"""Quality guardrail: do the candidate's outputs still agree with the baseline's (or the references)?"""
from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from ..config.specs import QualityRule
from ..store.records import PromptResult
from ..store.verdicts import Row


def agreement(outputs: Mapping[str, str], expected: Mapping[str, str]) -> tuple[Decimal, Decimal, int] | None:
    """(exact-match rate, mean token-level similarity, prompts compared), or None with nothing to compare.

    Similarity is difflib's ratio over whitespace tokens: 1.0 identical, 0.5 when half the tokens match.
    """
    ids = [i for i in outputs if i in expected]
    if not ids:
        return None
    exact = sum(outputs[i] == expected[i] for i in ids)
    similar = sum(difflib.SequenceMatcher(None, outputs[i].split(), expected[i].split(), autojunk=False).ratio()
                  for i in ids)
    return Decimal(exact) / len(ids), Decimal(repr(round(similar / len(ids), 6))), len(ids)


def expected_outputs(base: Mapping[str, PromptResult], references: Mapping[str, str]) -> tuple[dict[str, str], str]:
    """What to compare against: the prompts' references where given, else the baseline's outputs."""
    if references:
        return dict(references), "reference"
    return {i: r.output for i, r in base.items() if r.output is not None and r.error is None}, "baseline"


def quality_rows(rule: QualityRule, results: Sequence[PromptResult], base: Mapping[str, PromptResult],
                 references: Mapping[str, str]) -> tuple[list[Row], list[str]]:
    """Rows for the verdict (fail below a minimum) and a note on what was compared."""
    expected, source = expected_outputs(base, references)
    outputs = {r.id: r.output for r in results if r.output is not None and r.error is None}
    found = agreement(outputs, expected)
    if found is None:
        return [], [f"quality not checked: no {source} outputs to compare with"]
    exact, similarity, n = found
    rows = []
    for metric, value, minimum in (("quality_exact_match", exact, rule.min_exact_match),
                                   ("quality_similarity", similarity, rule.min_similarity)):
        if minimum is not None:
            status = "fail" if value < minimum else "pass"
            rows.append(Row(metric, None, f"{value:.3f}", None, None, f"min {(minimum * 100).normalize():f}%", status))
    return rows, [f"quality compared with the {source} outputs of {n} prompts: exact match {exact:.1%}, "
                  f"similarity {similarity:.3f}"]


def resolved(rule: QualityRule, outputs: Mapping[str, str | None], expected: Mapping[str, str]) -> set[str]:
    """The prompts whose output passes the rule on its own: equal to the expected output, or (with
    `min_similarity`) at least that similar to it. A prompt with nothing to compare against is not resolved."""
    done = set()
    for pid, text in outputs.items():
        want = expected.get(pid)
        if text is None or want is None:
            continue
        if text == want or (rule.min_similarity is not None and Decimal(repr(round(difflib.SequenceMatcher(
                None, text.split(), want.split(), autojunk=False).ratio(), 6))) >= rule.min_similarity):
            done.add(pid)
    return done


def resolved_sets(rule: QualityRule, results: Any, base: Mapping[str, PromptResult] | None,
                  references: Mapping[str, str]) -> tuple[set[str] | None, set[str]]:
    """(the baseline's resolved prompts, the candidate's): against the references where given; else against
    the baseline's outputs, which then resolve every prompt the baseline answered by definition."""
    expected, source = expected_outputs(base or {}, references)
    records = results.values() if isinstance(results, Mapping) else results
    outputs = {r.id: r.output for r in records if r.error is None}
    head = resolved(rule, outputs, expected)
    if base is None:
        return None, head
    if source == "reference":
        return resolved(rule, {i: r.output for i, r in base.items() if r.error is None}, references), head
    return {i for i, r in base.items() if r.error is None and r.output is not None}, head
