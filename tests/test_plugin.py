"""The plugin end to end with pytester: inert by default, verdicts, baselines, reports, xdist."""
from __future__ import annotations

import json

import pytest
from conftest import records

GATE = ["--costgate", "--costgate-config", "costgate.yaml", "-p", "no:cacheprovider"]


def test_inert_without_flag(pytester, demo):
    pytester.makepyfile(test_plain="def test_ok():\n    assert True\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.no_fnmatch_line("*= costgate =*")
    result.stdout.no_fnmatch_line("*costgate.yaml*")


def test_can_be_disabled(pytester, demo):
    result = pytester.runpytest("-p", "no:costgate", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED


def test_demo_passes_against_its_baseline(pytester, demo):
    result = pytester.runpytest(*GATE)
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["*costgate*", "suite*status*cost/req*monthly*", "support-answer*PASS*",
                                 "ticket-triage*PASS*", "local-answer*PASS*$0.00003125*", "monthly estimate:*+$0.00*"])
    result.stdout.no_fnmatch_line("*INTERNALERROR*")


def test_ini_twin_enables_the_gate(pytester, demo):
    pytester.makeini("[pytest]\ncostgate = true\ncostgate_config = costgate.yaml\n")
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=3)


def test_template_growth_fails_naming_suite_and_metric(pytester, demo):
    template = demo / "templates" / "support.j2"
    template.write_text("Please be thorough, polite and cite sources. " * 3 + template.read_text())
    result = pytester.runpytest(*GATE)
    result.assert_outcomes(passed=1, failed=2)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*costgate suite 'support-answer' FAIL:*", "metric*baseline*candidate*change*threshold*level",
                                 "input_tokens_mean*fail +5%*fail", "note: template changed*"])
    result.stdout.no_fnmatch_line("*Traceback*")


def test_small_growth_only_warns(pytester, demo):
    template = demo / "templates" / "support.j2"
    template.write_text(template.read_text().replace("at most three sentences", "at most three short sentences"))
    result = pytester.runpytest(*GATE)
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["support-answer*WARN*", "input_tokens_mean*warn"])


def test_missing_baseline_reports_numbers_and_how_to_create_it(pytester, demo):
    (demo / "baseline.json").unlink()
    result = pytester.runpytest(*GATE)
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["support-answer*NO BASELINE*", "*--costgate-update-baseline*"])


def test_missing_baseline_can_be_made_to_fail(pytester, demo):
    (demo / "baseline.json").unlink()
    config = demo / "costgate.yaml"
    config.write_text(config.read_text() + "on_missing_baseline: fail\n")
    pytester.runpytest(*GATE).assert_outcomes(failed=3)


def test_update_baseline_writes_atomically_and_then_passes(pytester, demo):
    (demo / "baseline.json").unlink()
    result = pytester.runpytest(*GATE, "--costgate-update-baseline")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["costgate: wrote baseline *baseline.json"])
    doc = json.loads((demo / "baseline.json").read_text())
    assert doc["schema"] == "costgate/1" and set(doc["suites"]) == {"support-answer", "ticket-triage", "local-answer"}
    assert not {"verdict", "prompt_changes"} & set(doc["suites"]["support-answer"])
    assert len(records(doc["suites"]["support-answer"])) == 24
    assert not list(demo.glob(".baseline.json.*"))  # no temp file left behind
    pytester.runpytest(*GATE).assert_outcomes(passed=3)


def test_update_of_one_suite_keeps_the_others(pytester, demo):
    from pytest_costgate.store.schema import read_document

    before = read_document(demo / "baseline.json")
    pytester.runpytest(*GATE, "--costgate-update-baseline", "-k", "triage").assert_outcomes(passed=1)
    after = read_document(demo / "baseline.json")
    assert after.suites["support-answer"] == before.suites["support-answer"]
    assert after.suites["ticket-triage"] != before.suites["ticket-triage"]  # re-measured (timings differ)


def test_json_report(pytester, demo):
    pytester.runpytest(*GATE, "--costgate-report", "out/report.json").assert_outcomes(passed=3)
    report = json.loads((demo / "out" / "report.json").read_text())
    assert report["schema"] == "costgate/1"
    assert report["summary"]["status"] == "pass" and report["summary"]["monthly_delta"] == "0"
    suite = report["suites"]["support-answer"]
    assert suite["verdict"]["status"] == "pass" and suite["template_hash"]
    assert suite["metrics"]["n"] == 24 and Decimal_str(suite["metrics"]["monthly_cost"]) > 0
    record = records(suite)["support-000"]
    assert record["token_source"] == "tokenizer" and record["input_tokens"] > 0 and "e2e_ms" in record


def Decimal_str(value: str) -> float:
    return float(value)


def test_tokens_only_mode_needs_no_model(pytester, demo):
    config = demo / "costgate.yaml"
    config.write_text(config.read_text().replace("function: demo_model:answer", "function: missing_module:answer"))
    result = pytester.runpytest(*GATE, "--costgate-tokens-only")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["support-answer*PASS*tokens-only*"])
    # a template change is still caught exactly
    template = demo / "templates" / "support.j2"
    template.write_text("Extra instructions that cost money on every single request. " * 4 + template.read_text())
    result = pytester.runpytest(*GATE, "--costgate-tokens-only")
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(["input_tokens_mean*fail"])


def test_selecting_only_the_gate_with_a_marker(pytester, demo):
    pytester.makepyfile(test_plain="def test_ok():\n    assert True\n")
    pytester.runpytest(*GATE, "-m", "costgate").assert_outcomes(passed=3, deselected=1)


def test_openai_suite_counts_errors_and_fails_with_the_server_message(pytester, openai_server):
    pytester.makefile(".jsonl", prompts='{"id": "a", "vars": {"q": "one two"}}\n{"id": "b", "vars": {"q": "three"}}\n')
    pytester.makefile(".j2", t="Q: {{ q }}")
    pytester.makefile(".yaml", costgate=f"""
models:
  m:
    backend: openai
    base_url: {openai_server.url}
    max_retries: 0
    pricing: {{input_per_1m: 1, output_per_1m: 2}}
suites:
  s:
    model: m
    prompts: prompts.jsonl
    template: t.j2
    max_error_rate: 0.4
""")
    openai_server.script.extend(["ok", "401"])
    result = pytester.runpytest(*GATE)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["error_rate*50%*max_error_rate 0.4*fail",
                                 "note: 1 of 2 requests failed*HTTP 401: Incorrect API key provided*"])


def test_xdist_gives_the_same_verdicts_and_report(pytester, demo):
    template = demo / "templates" / "support.j2"
    template.write_text("More words here. " * 5 + template.read_text())
    serial = pytester.runpytest_subprocess(*GATE, "--costgate-report", "serial.json")
    parallel = pytester.runpytest_subprocess(*GATE, "--costgate-report", "parallel.json", "-n", "2")
    serial.assert_outcomes(passed=1, failed=2)
    parallel.assert_outcomes(passed=1, failed=2)
    parallel.stdout.fnmatch_lines(["*costgate suite 'support-answer' FAIL:*", "support-answer*FAIL*"])

    def stable(path: str) -> dict:
        doc = json.loads((demo / path).read_text())
        for suite in doc["suites"].values():
            for volatile in ("latency", "load_s", "wall_s", "requests_per_s", "calibration"):
                suite.pop(volatile)
            for metric in ("latency_p50", "latency_p95"):
                suite["metrics"].pop(metric)
            suite["verdict"]["rows"] = [r for r in suite["verdict"]["rows"] if not r["metric"].startswith("latency")]
            columns = suite["prompts"]["columns"]
            for row in suite["prompts"]["rows"]:
                for key in ("ttft_ms", "e2e_ms", "tpot_ms", "busy_ms"):
                    row[columns.index(key)] = None
        doc.pop("created")
        return doc

    assert stable("serial.json") == stable("parallel.json")


def test_no_heavy_imports_at_plugin_load(pytester):
    pytester.makepyfile(test_mods="""
import sys

def test_modules():
    loaded = [m for m in ("tiktoken", "onnxruntime", "jinja2", "tokenizers", "pytest_costgate.gate.suite") if m in sys.modules]
    assert loaded == []
""")
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_new_and_removed_suites_are_shown_not_failed(pytester, demo):
    config = demo / "costgate.yaml"
    text = config.read_text().replace("  ticket-triage:", "  ticket-routing:")
    config.write_text(text)
    result = pytester.runpytest(*GATE, "--costgate-report", "r.json")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["ticket-routing*NEW*", "ticket-triage: in the baseline but no longer in the config*",
                                 "note: new suite: not in the baseline"])
    assert json.loads((demo / "r.json").read_text())["summary"]["removed_suites"] == ["ticket-triage"]


def test_added_and_removed_prompts_are_not_regressions(pytester, demo):
    prompts = demo / "prompts" / "support.jsonl"
    lines = prompts.read_text().splitlines()
    big = '{"id": "support-new", "vars": {"product": "X", "tier": "pro", "question": "' + "word " * 30 + '"}}'
    prompts.write_text("\n".join(lines[1:] + [big]) + "\n")
    result = pytester.runpytest(*GATE)
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["note: 1 prompt(s) new since the baseline, not compared: support-new",
                                 "note: 1 prompt(s) gone since the baseline, not compared: support-000"])


SLOW_MODEL = """
import os, time

def answer(prompt, params):
    time.sleep(len(prompt) * float(os.environ.get("DELAY_MS_PER_CHAR", "0.05")) / 1000)
    return "ok"
"""


@pytest.mark.parametrize("head_delay, status", [("0.05", "pass"), ("0.10", "fail")])
def test_latency_is_gated_by_the_paired_rule(pytester, monkeypatch, head_delay, status):
    pytester.makepyfile(slow_model=SLOW_MODEL)
    lines = "\n".join(json.dumps({"id": f"p{i}", "prompt": "x" * (20 + 10 * i)}) for i in range(16))
    pytester.makefile(".jsonl", prompts=lines + "\n")
    pytester.makefile(".yaml", costgate="""
models:
  m: {backend: python, function: "slow_model:answer", path: ".", pricing: {input_per_1m: 1, output_per_1m: 1}}
suites:
  s:
    model: m
    prompts: prompts.jsonl
    thresholds: {latency_p50: {fail: "+25%"}}
""")
    monkeypatch.setenv("DELAY_MS_PER_CHAR", "0.05")
    pytester.runpytest_subprocess(*GATE, "--costgate-update-baseline").assert_outcomes(passed=1)
    monkeypatch.setenv("DELAY_MS_PER_CHAR", head_delay)
    result = pytester.runpytest_subprocess(*GATE, "--costgate-report", "r.json")
    row = next(r for r in json.loads((pytester.path / "r.json").read_text())["suites"]["s"]["verdict"]["rows"]
               if r["metric"] == "latency_p50")
    assert row["status"] == status, row
    assert row["interval"] and "over 16 prompts" in row["interval"]
    if status == "fail":
        result.stdout.fnmatch_lines(["latency_p50*fail", "latency_p50: paired change +*%*over 16 prompts"])


def test_repeats_take_medians_and_export_pytest_benchmark_json(pytester, demo):
    config = demo / "costgate.yaml"
    config.write_text(config.read_text().replace("  max_error_rate: 0\n", "") + "")
    config.write_text(config.read_text().replace("defaults:\n", "defaults:\n  repeats: 3\n"))
    pytester.runpytest(*GATE, "--costgate-report", "r.json", "--costgate-benchmark-json", "bench.json").assert_outcomes(passed=3)
    record = records(json.loads((demo / "r.json").read_text())["suites"]["support-answer"])["support-000"]
    assert record["runs"] == 3 and len(record["e2e_runs"]) == 3
    assert record["e2e_ms"] == sorted(record["e2e_runs"])[1]
    bench = json.loads((demo / "bench.json").read_text())
    names = {b["name"] for b in bench["benchmarks"]}
    assert {"support-answer[e2e]", "local-answer[e2e]", "local-answer[ttft]"} <= names
    e2e = next(b for b in bench["benchmarks"] if b["name"] == "support-answer[e2e]")
    assert e2e["stats"]["rounds"] == 24 * 3
    import subprocess
    import sys
    from pathlib import Path

    cli = Path(sys.executable).parent / "pytest-benchmark"
    done = subprocess.run([str(cli) if cli.exists() else "pytest-benchmark", "compare", str(demo / "bench.json")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "support-answer[e2e]" in done.stdout and "local-answer[ttft]" in done.stdout


def test_time_budget_stops_replay_and_judges_what_was_measured(pytester, demo, budget_clock):
    pytester.makepyfile(slow_model="def run(prompt, params):\n    return 'ok'\n")
    config = demo / "costgate.yaml"
    config.write_text(config.read_text().replace("function: demo_model:answer", "function: slow_model:run")
                      .replace("  support-answer:\n", "  support-answer:\n    time_budget_s: 0.3\n"))
    result = pytester.runpytest(*GATE, "-k", "support", "--costgate-report", "r.json")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["note: time budget reached: * of 24 prompts measured; judged on those"])
    config.write_text(config.read_text() + "on_time_budget: fail\n")
    pytester.runpytest(*GATE, "-k", "support").assert_outcomes(failed=1)
    # nothing measured never passes, whatever on_time_budget says
    result = pytester.runpytest(*GATE, "--costgate-time-budget", "0.000001")
    result.assert_outcomes(failed=3)
    result.stdout.fnmatch_lines(["*time budget reached before any of the 24 prompts was measured*"])


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "soon"])
def test_time_budget_must_be_positive_seconds(pytester, demo, value):
    result = pytester.runpytest(*GATE, f"--costgate-time-budget={value}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--costgate-time-budget*expected a positive number of seconds*"])


def _git(cwd, *args):
    import subprocess

    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout


def test_live_baseline_against_a_git_ref(pytester, demo):
    _git(demo, "init", "-q")
    _git(demo, "-c", "user.name=t", "-c", "user.email=t@t", "add", "-A")
    _git(demo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "base")
    (demo / "baseline.json").unlink()  # the live replay needs no stored baseline
    template = demo / "templates" / "support.j2"
    template.write_text("Please be thorough and cite sources every time. " + template.read_text())
    (demo / ".git" / "info" / "exclude").write_text("r.json\n")  # the report this run is asked to write
    before = _git(demo, "status", "--porcelain")
    result = pytester.runpytest(*GATE, "--costgate-against", "HEAD", "--costgate-report", "r.json")
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(["*costgate suite 'support-answer' FAIL:*", "input_tokens_mean*fail",
                                 "monthly estimate:*vs baseline)"])
    assert _git(demo, "status", "--porcelain") == before  # the working tree was not touched
    report = json.loads((demo / "r.json").read_text())
    suite = report["suites"]["support-answer"]
    assert suite["baseline_source"] == "live replay of HEAD"
    assert all(r["runs"] == 2 for r in records(suite).values())  # each prompt: base, head, head, base
    assert report["summary"]["baseline_git_sha"] == "HEAD"


def test_live_baseline_with_an_unknown_ref(pytester, demo):
    _git(demo, "init", "-q")
    result = pytester.runpytest(*GATE, "--costgate-against", "no-such-branch")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--costgate-against no-such-branch: git cannot read that ref*fetch-depth: 0*"])
