"""The PR comment: golden Markdown per scenario, valid GFM tables, hostile text neutralised, size limit."""
from __future__ import annotations

import json
from decimal import Decimal
import os
import re
from pathlib import Path

import cmarkgfm
import pytest
from cmarkgfm.cmark import Options

from pytest_costgate.diff import diff_reports
from pytest_costgate.schema import parse_document
from pytest_costgate.report.markdown import MARKER_PREFIX, cell, marker, render_markdown

GOLDEN = Path(__file__).parent / "golden"
CASES = ["all-pass", "failing-suite", "new-suite", "removed-suite", "no-baseline", "not-comparable", "hostile"]


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


def test_headline_words():
    assert "increased by $64.74 (+14.5%) 📈" in render_markdown(report("failing-suite"))
    assert "unchanged" in render_markdown(report("all-pass"))
    assert "no baseline to compare with" in render_markdown(report("no-baseline"))


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
    assert written.startswith(MARKER_PREFIX) and "Monthly estimate unchanged" in written
    assert summary.read_text() == written + "\n"
