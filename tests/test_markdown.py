"""The PR comment: golden Markdown per scenario, valid GFM tables, hostile text neutralised, size limit."""
from __future__ import annotations

import json
import os
import re
from decimal import Decimal
from pathlib import Path

import cmarkgfm
import pytest
from cmarkgfm.cmark import Options

from pytest_costgate.gate.diff import diff_reports
from pytest_costgate.report.markdown import MARKER_PREFIX, cell, marker, render_gate_error, render_markdown
from pytest_costgate.store.schema import parse_document

GOLDEN = Path(__file__).parent / "golden"
CASES = ["all-pass", "failing-suite", "price-change", "output-growth", "new-suite", "removed-suite", "no-baseline",
         "not-comparable", "hostile"]


def report(case: str):
    return parse_document(json.loads((GOLDEN / f"{case}.json").read_text()), case)


def html(markdown: str) -> str:
    return cmarkgfm.github_flavored_markdown_to_html(markdown, options=Options.CMARK_OPT_UNSAFE)


@pytest.mark.parametrize("case", CASES)
def test_golden(case):
    body = render_markdown(report(case))
    golden = GOLDEN / f"{case}.md"
    if os.environ.get("COSTGATE_UPDATE_GOLDEN"):
        golden.write_text(body)
    assert body == golden.read_text()


@pytest.mark.parametrize("case", CASES)
def test_renders_as_valid_gfm_tables(case):
    body = render_markdown(report(case))
    assert body.startswith(marker("costgate.yaml"))
    rendered = html(body)
    tables = re.findall(r"<table>(.*?)</table>", rendered, re.S)
    assert tables, "the summary table must render as a table"
    source_tables = [block for block in re.split(r"\n\n", body) if block.lstrip().startswith("| ")]
    assert len(tables) == len(source_tables)
    for table in tables:
        header = len(re.findall(r"<th[ >]", table))
        rows = re.findall(r"<tr>(.*?)</tr>", table, re.S)[1:]
        assert rows and all(len(re.findall(r"<td[ >]", row)) == header for row in rows)
    assert "<script" not in rendered and "<b>" not in rendered


def test_hostile_text_cannot_ping_link_or_inject():
    body = render_markdown(report("hostile"))
    assert "@octocat" not in body and "@team" not in body and "#123" not in body and "#9" not in body
    assert "@\u200boctocat" in body and "#\u200b123" in body
    rendered = html(body)
    assert "<script" not in rendered and 'href="http://evil"' not in rendered and "<strong>bold" not in rendered
    assert "&lt;script&gt;" in rendered  # shown as text


@pytest.mark.parametrize("text, expected", [
    ("a|b", "a\\|b"), ("`x`", "\\`x\\`"), ("<i>", "&lt;i&gt;"), ("@me", "@\u200bme"), ("#12", "#\u200b12"),
    ("line\nbreak", "line break"), ("see https://x.io", "see https\u200b://x.io"), ("www.x.io", "www\u200b.x.io"), ("x" * 100, "x" * 79 + "…"), ("[a](b)", "\\[a\\](b)"),
])
def test_cell_escaping(text, expected):
    assert cell(text) == expected


def first_lines(case: str, n: int = 4) -> list[str]:
    return [line for line in render_markdown(report(case)).splitlines() if line][1:n]


def test_headline_says_verdict_and_money():
    assert first_lines("failing-suite")[0] == "## ❌ costgate: 1 of 2 suites failed — monthly +$64.74 (+14.5%)"
    assert first_lines("all-pass")[0] == "## ✅ costgate: 2 suites passed — monthly unchanged at $446.89"
    assert first_lines("no-baseline")[0].startswith("## ➖ costgate: 2 suites, no baseline to compare with — monthly")
    assert first_lines("hostile")[0].startswith("## ⚠️ costgate: 1 of 2 suites warned — monthly unchanged at $")
    assert first_lines("price-change")[0] == "## ❌ costgate: 1 of 2 suites failed — monthly +$61.21 (+13.7%)"


def test_failing_suite_names_the_template_file_and_driver():
    driver = first_lines("failing-suite")[1]
    assert driver == ("- ❌ **support-answer**: input tokens +8/request (+22.2%) and output tokens +3.4/request "
                      "(+13.5%) after `templates/support.j2` changed")


def test_price_change_is_told_apart_from_usage():
    lines = first_lines("price-change", 6)
    assert "after" not in lines[1]  # nothing in the inputs changed: the price did
    assert lines[1] == "- ❌ **support-answer**: output $10.00 → $12.00 per 1M tokens: +$60.56/month at the same usage"
    body = render_markdown(report("price-change"))
    assert "| support-answer | +$0.00 | +$60.56 | – | +$60.56 | – |" in body  # usage 0, all price


def test_output_growth_without_input_change():
    line = first_lines("output-growth")[1]
    assert line.startswith("- ❌ **support-answer**: output tokens +") and "input tokens" not in line
    assert "after" not in line  # neither template nor prompt set changed: the model's answers grew


def test_usage_price_and_volume_add_up_to_the_change():
    for case in CASES:
        for name, entry in report(case).suites.items():
            a = entry.attribution
            if a is None or a.usage is None:
                continue
            month = next(r for r in entry.verdict.rows if r.metric == "monthly_cost")  # baseline kept to 4 places
            total = a.volume + a.usage + a.price
            assert abs(total - (entry.metrics.monthly_cost - Decimal(month.baseline))) < Decimal("0.0001"), (case, name)


def test_long_bodies_are_shortened_details_first():
    data = json.loads((GOLDEN / "failing-suite.json").read_text())
    entry = data["suites"]["support-answer"]
    entry["prompt_changes"] = [{"id": f"p{i}" + "z" * 60, "cost_delta": "0.001", "input_tokens_delta": 5,
                                "output_tokens_delta": 0} for i in range(20)]
    for i in range(40):
        data["suites"][f"copy-{i}"] = entry
    big = parse_document(data, "big")
    full = render_markdown(big, limit=10**9)
    limit = len(full) - 1000
    short = render_markdown(big, limit=limit)
    assert len(short) <= limit < len(full)
    assert "Details shortened to fit GitHub's" in short
    assert short.count("| copy-") >= 40  # the summary rows are kept


def test_user_template(tmp_path):
    template = tmp_path / "mine.md.j2"
    template.write_text("{{ marker }}\nTotal: {{ headline }} ({{ suites | length }} suites)\n")
    assert render_markdown(report("failing-suite"), template).endswith("(2 suites)\n")


def test_diff_of_two_reports_uses_default_thresholds():
    base, head = report("all-pass"), report("failing-suite")
    diffed = diff_reports(base, head)
    assert diffed.suites["support-answer"].status == "fail"  # cost +17.5% > default fail +10%
    assert diffed.summary.monthly_delta == head.summary.monthly_delta == Decimal("64.744186046512")


def test_pytest_writes_markdown_and_step_summary(pytester, demo, monkeypatch):
    summary = pytester.path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    result = pytester.runpytest("--costgate", "--costgate-config", "costgate.yaml", "-p", "no:cacheprovider",
                                "--costgate-markdown", "out/comment.md")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["costgate: wrote markdown *comment.md"])
    written = (pytester.path / "out" / "comment.md").read_text()
    assert written.startswith(MARKER_PREFIX) and "monthly unchanged at" in written
    assert summary.read_text() == written + "\n"


GATE_LOG = """============================= test session starts ==============================
ERROR: fixtures/demo/costgate.yaml:31: suites.support-answer.thresholds.cost_per_request.fail: '+5 %' is not a
change; write +5%, +$0.01 or 0.5 (absolute).
"""


def test_gate_error_golden_says_the_gate_could_not_run():
    body = render_gate_error(GATE_LOG, "costgate.yaml")
    golden = GOLDEN / "gate-error.md"
    if os.environ.get("COSTGATE_UPDATE_GOLDEN"):
        golden.write_text(body)
    assert body == golden.read_text()
    assert body.startswith(marker("costgate.yaml"))
    assert "could not run" in body.splitlines()[1] and "suites.support-answer.thresholds" in body
    rendered = html(body)
    assert "<table>" not in rendered and "<script" not in rendered and "<blockquote>" in rendered
